"""The instrument that measures the reference model. Each folder answers one question:

eval/      how a program is run and scored: tasks and samples, execution, pass@k, mutation testing,
           code-quality metrics (syntax, ShellCheck, BLEU, CodeBLEU)
sandbox/   how an untrusted program is contained: bubblewrap, two users, seccomp, a cgroup per run
models/    where completions come from: a reference checkpoint, an mlx-lm folder, an OpenAI-compatible
           server; exporting a checkpoint as a Hugging Face folder
perf/      how fast and how sure: benchmarks, timing, hardware peaks, feasibility, comparing reports, scaling
claims/    what the seed claimed, audited against arithmetic, public record and measured reports
site/      how results are shown: RESULTS.md and the static HTML site with its SVG plots
commands/  one module per `harness` command (cli.py dispatches)

At the top: report.py (the versioned report and its schema), environment.py (what ran it), outputs.py
(checked paths), numbers.py (how numbers are written), intervals.py (the intervals and tests behind
every "how sure"), resources.py (shipped data).
Imports run one way: commands -> the rooms above -> report/environment -> reference.
"""
__version__ = "0.1.0"
