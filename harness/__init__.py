"""The instrument: benchmarks, evaluators, sandbox, reports, claims and publishing for the reference model."""
__version__ = "0.1.0"
