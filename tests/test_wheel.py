"""The project as a package: a wheel built from the sources and installed outside the checkout runs
`harness eval --canonical`, `harness claims` and finds the training configs, from a folder that is not the
checkout (the task suite, the seed claims and the configs ship as package data)."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "harness", "reference", "fixtures/tasks", "fixtures/claims", "configs")

pytestmark = pytest.mark.slow


def _copy_sources(dst: Path) -> None:
    """Only what the build reads, so the build leaves nothing (build/, *.egg-info) in the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for rel in SOURCES:
        src, out = ROOT / rel, dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, out, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(src, out)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    _copy_sources(tmp / "src")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(tmp / "dist"), str(tmp / "src")], check=True,
                   capture_output=True, timeout=600)
    wheel = next((tmp / "dist").glob("*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    work = tmp / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp / "site")}
    return wheel, tmp / "site", work, env


def _harness(installed, *args):
    _, site, work, env = installed
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)


def test_wheel_ships_the_data_the_commands_read(installed):
    wheel, site, work, env = installed
    names = zipfile.ZipFile(wheel).namelist()
    for want in ("harness/bundled/tasks/suite.json", "harness/bundled/claims/seed-claims.json",
                 "harness/bundled/configs/pretrain-small.json", "harness/data/report.schema.json",
                 "harness/data/site.css", "reference/model.py"):
        assert want in names
    r = subprocess.run([sys.executable, "-c", "import harness, reference; print(harness.__file__, reference.__file__)"],
                       cwd=work, env=env, capture_output=True, text=True, check=True)
    assert all(p.startswith(str(site)) for p in r.stdout.split())


@pytest.mark.sandbox
def test_installed_harness_evaluates_the_shipped_suite(installed):
    out = installed[2] / "eval.json"
    r = _harness(installed, "eval", "--canonical", "--limit", "5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert str(installed[1].resolve()) in report["config"]["tasks"]["source"]
    assert {m["name"]: m["value"] for m in report["metrics"]}["eval.pass@1"] == 1.0


def test_installed_harness_audits_the_shipped_claims(installed):
    out = installed[2] / "claims.json"
    r = _harness(installed, "claims", "--out", str(out))
    assert r.returncode in (0, 1), r.stderr  # 1: some claims are refuted, as the audit says
    report = json.loads(out.read_text())
    assert len(report["claims"]) > 100 and str(installed[1]) in report["config"]["claims_file"]


def test_installed_harness_finds_the_shipped_training_configs(installed):
    _, site, work, env = installed
    code = ("from harness.commands.train import CONFIG_DIR, resolve_config; "
            "print(CONFIG_DIR); print(resolve_config('pretrain-small')['preset'])")
    r = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    config_dir, preset = r.stdout.split()
    assert config_dir.startswith(str(site.resolve())) and preset == "small"
    r = _harness(installed, "train", "--config", "pretrain-small", "--data", "no-such-data", "--out", "run")
    assert r.returncode == 2 and "--data no-such-data does not exist" in r.stderr, r.stderr
