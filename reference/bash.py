"""bash's own parser as the judge of syntax: `bash -n` reads a script from stdin and executes nothing.

BASH_ENV is dropped (a clean environment), so no start-up file runs either; a non-interactive shell reads no
profile or rc file. Used to validate the corpus, for the syntax-accuracy metric and to tell a syntax error
from a failing run."""
from __future__ import annotations

import subprocess

CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


def bash_n(text: str | bytes, timeout: float = 10.0, bash: str = "bash") -> tuple[bool | None, str]:
    """(ok, first error line) of `bash -n` on `text`; ok is None when it ran over `timeout` seconds, False
    with the reason when bash could not be started."""
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    try:
        r = subprocess.run([bash, "-n"], input=data, capture_output=True, timeout=timeout, env=CLEAN_ENV)
    except subprocess.TimeoutExpired:
        return None, f"bash -n took longer than {timeout:g} s"
    except OSError as e:  # could not start bash (e.g. out of processes): not the script's fault, but unchecked
        return False, f"could not run bash -n: {e}"
    err = r.stderr.decode("utf-8", "replace").strip().splitlines()
    return r.returncode == 0, (err[0][:300] if err else "" if r.returncode == 0 else f"bash -n exited {r.returncode}")
