"""How an untrusted program is contained: sandbox.py runs one program under bubblewrap with a judge it cannot
reach; spec.py (paths, environment, limits, the init and the candidate's wrapper), userns.py (two users),
seccomp.py (the syscall filter), cgroups.py (a memory cap per run) and supervise.py (the process tree, its
clock and its output caps) are its parts."""
