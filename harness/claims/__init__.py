"""The audit of the seed's claims: audit.py loads the claims and combines every finding into a verdict;
checks.py (arithmetic and feasibility), facts.py (exact and factual checks) and twin.py (MLX against its
PyTorch twin in measured reports) produce the findings defined in findings.py."""
