"""Root pytest configuration shared by tests/ and suites/.

- Preloads OpenBLAS by re-executing pytest once before anything imports mlx (reference/runtime.py),
  so the suites measure the fast CPU path; HARNESS_BLAS=bundled opts out.
- Security suites never pass by not running: tests marked `sandbox` need bubblewrap, tests marked `isolation`
  need every layer of the sandbox (bubblewrap, root for the separate judge, a cgroup per run, seccomp). Where
  one is missing they fail under CI (CI=true) and are skipped elsewhere, with one loud summary line that says
  what was not checked.
- Hypothesis profiles: `ci` (default; few examples, no deadline since model code is slow on 2 cores)
  and `dev` (more examples). Choose with HYPOTHESIS_PROFILE=dev.
"""
import os

import pytest
from hypothesis import HealthCheck, settings

from reference.runtime import ensure_fast_blas

settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # pytest has already redirected fds 1 and 2 into its capture files; give them back before the
    # re-exec, or the new process would write its whole report into a discarded temp file.
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.stop_global_capturing()
    ensure_fast_blas()
    if capman is not None:
        capman.start_global_capturing()


def pytest_addoption(parser):
    """Options of the benchmark suites (suites/benchmarks). Defined here so they exist however pytest
    is invoked. Each list option may be repeated or comma-separated."""
    g = parser.getgroup("harness", "harness benchmark configurations")
    g.addoption("--quick", action="store_true", default=False,
                help="quick mode: the smallest configurations, few repeats (what CI runs)")
    g.addoption("--preset", action="append", default=None, help="model preset(s) to benchmark (default: small; tiny too without --quick on a GPU)")
    g.addoption("--dtype", action="append", default=None, help="float32 and/or bfloat16 (default float32 on CPU)")
    g.addoption("--batch", action="append", default=None, help="batch size(s)")
    g.addoption("--seq", action="append", default=None, help="sequence length(s)")
    g.addoption("--grad-checkpoint", action="append", default=None,
                help="gradient checkpointing on/off (default off)")
    g.addoption("--framework", action="append", default=None, help="mlx and/or torch (the twin) (default: both)")
    g.addoption("--gen-n", action="append", type=int, default=None,
                help="generation benchmark: rows of one prompt decoded together (pass@k), e.g. --gen-n 1 --gen-n 20 "
                     "(default 1)")



@pytest.fixture
def one_torch_thread():
    """PyTorch on one thread for tiny twin models: they are all dispatch overhead, so one thread is as fast
    and immune to OpenMP threads spinning against other processes on a loaded 2-core machine (seen to slow
    the twin tests 100x)."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


_NOT_CHECKED: dict[str, int] = {}
_GAPS: dict[str, str] = {}


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    marked = [(it, it.get_closest_marker("isolation") is not None) for it in items
              if it.get_closest_marker("sandbox") or it.get_closest_marker("isolation")]
    if not marked:
        return
    from harness.sandbox.sandbox import isolation_gaps

    _GAPS.update(isolation_gaps())
    for item, full in marked:
        missing = [g for k, g in _GAPS.items() if full or k == "bwrap"]
        if not missing:
            continue
        why = "; ".join(missing)
        _NOT_CHECKED[why] = _NOT_CHECKED.get(why, 0) + 1
        if _ci():
            item.user_properties.append(("isolation_missing", why))
            item.fixturenames.insert(0, "_isolation_required")
        else:
            item.add_marker(pytest.mark.skip(reason=f"sandbox layer missing: {why}"))


@pytest.fixture
def _isolation_required(request):
    why = dict(request.node.user_properties).get("isolation_missing")
    pytest.fail(f"CI must check the sandbox, but this machine lacks: {why}", pytrace=False)


def pytest_terminal_summary(terminalreporter):
    for why, n in _NOT_CHECKED.items():
        verb = "FAILED" if _ci() else "NOT CHECKED (skipped)"
        terminalreporter.write_line(f"SANDBOX SECURITY {verb}: {n} test(s) need what this machine lacks: {why}",
                                    red=True, bold=True)
