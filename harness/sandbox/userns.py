"""A user namespace with two users in it, made once per sandbox slot: the judge and the candidate.

bubblewrap maps exactly one uid into the namespaces it makes, so tests and candidate would share a uid and the
candidate could debug, signal or read the judge. Run as root, we make the namespace ourselves instead: a process
running as the slot's owner uid unshares a user namespace, and root writes its maps (root may map any host ids):

    inside 0    -> host OWNER      the sandbox's init and the judge (the tests); owns every file bwrap creates
    inside 3000 -> host CANDIDATE  the program under test

bubblewrap then joins it with `--userns FD` (it runs as OWNER, who owns the namespace and so holds every
capability inside it). The namespace outlives its first process as long as we hold the fd."""
from __future__ import annotations

import os
import subprocess

CANDIDATE_ID = 3000   # uid and gid of the candidate inside the sandbox; the judge is 0


def make_userns(setpriv: str, owner: int, candidate: int) -> int:
    """An fd of a new user namespace owned by host uid `owner`, mapping 0 -> owner and CANDIDATE_ID -> candidate
    (uids and gids alike). Needs root. Raises OSError when the kernel refuses."""
    p = subprocess.Popen([setpriv, f"--reuid={owner}", f"--regid={owner}", "--clear-groups", "--", "unshare",
                          "--user", "--", "/bin/sh", "-c", "echo ready; read _"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"})
    try:
        if p.stdout.readline().strip() != b"ready":
            raise OSError(f"unshare --user failed: {p.stderr.read().decode('utf-8', 'replace').strip()[:200]}")
        for kind in ("uid", "gid"):
            with open(f"/proc/{p.pid}/{kind}_map", "w") as f:
                f.write(f"0 {owner} 1\n{CANDIDATE_ID} {candidate} 1\n")
        return os.open(f"/proc/{p.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        try:
            p.stdin.close()
        except OSError:
            pass
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()
