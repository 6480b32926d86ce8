"""Writing files so that a reader, or a run killed half-way, never sees a partial one: write a temporary file
in the same folder, fsync it, rename it over the target (rename is atomic within a file system), then fsync
the folder so the rename itself survives a crash. Used for reports, checkpoints, manifests and logs."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(d: str | os.PathLike) -> None:
    """Make a folder's entries (a rename into it) durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(p: str | os.PathLike) -> None:
    with open(p, "rb+") as f:
        os.fsync(f.fileno())


def write_text_synced(p: str | os.PathLike, text: str) -> None:
    """Write and fsync in place (for files inside a folder that is itself renamed into place)."""
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write via a temp file in the same directory + fsync + rename: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, path.stat().st_mode & 0o777 if path.exists() else 0o644)  # mkstemp's 0600 is for secrets
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return path
