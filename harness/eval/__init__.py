"""How a program is run and scored: the task suite and sample files (tasks.py, sample_files.py), building and
judging each program in the sandbox (execute.py), the run over a whole sample set (evaluate.py), the unbiased
pass@k estimator (passk.py), mutation testing of the suite's own tests (mutate.py; the scores shipped with the
suite: mutation_scores.py) and the code-quality metrics (metrics/)."""
