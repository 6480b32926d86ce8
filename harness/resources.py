"""Files the harness ships with it: the task suite, the seed's claims, the training configs (under
`bundled/`), the report schema and the site's stylesheet (under `data/`).

In a source checkout `harness/bundled/tasks`, `claims` and `configs` are links to `fixtures/tasks`,
`fixtures/claims` and `configs/`; a built wheel carries copies of them as package data. Either way they
are read through `importlib.resources`, so `harness eval --canonical` and `harness claims` find them from
any folder. Paths are resolved, so reports name `fixtures/tasks` when run from a checkout.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

BUNDLED = ("tasks", "claims", "configs")


def bundled(name: str) -> Path:
    """The folder of one shipped collection: "tasks", "claims" or "configs"."""
    if name not in BUNDLED:
        raise ValueError(f"no bundled collection {name!r}; one of {', '.join(BUNDLED)}")
    return Path(str(files("harness") / "bundled" / name)).resolve()


def data_file(name: str) -> Path:
    """A file under harness/data (report.schema.json, site.css)."""
    return Path(str(files("harness") / "data" / name))


def checkout_root() -> Path | None:
    """The repository root when this harness runs from a source checkout (editable install or cwd), else None."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "fixtures").is_dir() else None
