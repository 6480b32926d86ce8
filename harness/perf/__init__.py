"""How fast and how sure: training and generation benchmarks (bench.py, blasbench.py, timing.py), hardware
peaks and MFU (hardware.py), what fits and what can be reached at all (feasibility.py), verdicts between two
reports with their statistics (compare.py), and data-parallel scaling (scaling.py)."""
