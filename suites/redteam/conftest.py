"""Red-team fixtures: host canaries that the hostile programs in test_redteam.py go after.

The canaries are deliberately world-writable and world-readable, so that only the sandbox (not file
permissions) stands between them and the programs, which run as an unprivileged uid."""
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest


def snapshot(root: Path) -> dict:
    """relative path -> (mode, sha256 of the bytes) for everything under root, root itself as "."."""
    out = {".": (root.stat().st_mode, None)}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = (p.stat().st_mode, hashlib.sha256(p.read_bytes()).hexdigest()
                                         if p.is_file() else None)
    return out


@pytest.fixture(scope="session")
def snapshot_of():
    return snapshot


@pytest.fixture(scope="session")
def secret() -> str:
    return "REDTEAM-" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def canary(secret):
    # In the host's /tmp (the sandbox has its own): pytest's tmp dirs are 0700, which would prove nothing.
    d = Path(tempfile.mkdtemp(prefix="redteam-canary-", dir="/tmp"))
    (d / ".ssh").mkdir()
    (d / ".ssh" / "id_rsa").write_text(f"-----BEGIN FAKE KEY-----\n{secret}\n-----END FAKE KEY-----\n")
    (d / "canary.txt").write_text("do not touch\n")
    for p in (d, d / ".ssh"):
        os.chmod(p, 0o777)
    for p in (d / ".ssh" / "id_rsa", d / "canary.txt"):
        os.chmod(p, 0o666)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Listener:
    """A TCP server on the host's loopback: any connection from a sandbox is a network escape."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture(scope="session")
def listener():
    srv = Listener()
    yield srv
    srv.sock.close()


@pytest.fixture(scope="session")
def marker():
    """A host process whose command line carries a unique mark, for the /proc snooping program to look for."""
    mark = "redteam-marker-" + uuid.uuid4().hex[:12]
    p = subprocess.Popen(["bash", "-c", f'exec -a "{mark}" sleep 600'])
    p.mark = mark
    yield p
    p.kill()
    p.wait()
