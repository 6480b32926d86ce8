"""Root pytest configuration shared by tests/ and suites/.

- Preloads OpenBLAS by re-executing pytest once before anything imports mlx (reference/runtime.py),
  so the suites measure the fast CPU path; HARNESS_BLAS=bundled opts out.
- Hypothesis profiles: `ci` (default; few examples, no deadline since model code is slow on 2 cores)
  and `dev` (more examples). Choose with HYPOTHESIS_PROFILE=dev.
"""
import os

from reference.runtime import ensure_fast_blas

ensure_fast_blas()

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
