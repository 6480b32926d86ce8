"""Run one untrusted program under bubblewrap, with rlimits, a wall clock, capped output and nothing left behind.

Layers (each one is recorded in `Sandbox.isolation`; supervise.py watches the process tree):
- bwrap: new user/pid/net/ipc/uts/cgroup namespaces (no network at all), no capabilities, no nested user
  namespaces, a new session, die-with-parent. The root is built from read-only binds of /usr, /etc and the
  /bin-style links only, so /root, /home, /tmp, /work, /var, /opt and the project are simply absent; the
  sandbox's own root and /dev are then remounted read-only.
- the work directory is a size-capped tmpfs inside the sandbox; its files are copied in from memfds by
  bwrap (`--file`), so nothing is written to the host disk and there is nothing to clean up afterwards.
- as root, each concurrent sandbox runs as its own unprivileged uid (from UID_BASE, reserved with an flock so
  no other harness process uses it), switched to by `setpriv` so that Python can spawn with vfork: a
  plain fork of a harness holding a model costs tens of milliseconds per run. After each run every process
  of that uid must be gone.
- rlimits (processes, address space, file size, CPU, open files, no core) are set by the sandbox's pid 1,
  a bash that then runs the program as its child. Set inside the new user namespace, RLIMIT_NPROC counts
  only this sandbox's processes, so a fork bomb cannot starve the other workers.
- stdout/stderr are read as they come and capped; at the wall clock or a cap the whole pid namespace is killed.
No cgroup is used: the total memory of one program is bounded by nproc x RLIMIT_AS, not by a single cap.
"""
from __future__ import annotations

import fcntl
import os
import queue
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

from .errors import UsageError
from .supervise import INIT_NAME, RunResult, supervise

WORKDIR = "/sandbox/work"  # inside the sandbox; also $HOME and $TMPDIR
UID_BASE = int(os.environ.get("HARNESS_SANDBOX_UID_BASE", "2100000000"))  # unassigned range below 2**31
LOCK_DIR = os.path.join(tempfile.gettempdir(), "harness-sandbox-uids")     # one flock per uid in use
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install "
                "bubblewrap`) or pass --unsafe-no-sandbox to run completions without isolation")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "TMPDIR": WORKDIR, "LANG": "C.UTF-8",
       "SHELL": "/bin/bash"}
ROOT_ENTRIES = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32")  # everything else stays hidden
# After the work files are in: the sandbox's own root and /dev tmpfs become read-only too, so only the
# size-capped /sandbox (work dir and /tmp) and /dev/shm can be written, and nothing grows without bound.
SEAL = ("--remount-ro", "/dev", "--remount-ro", "/")


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10                     # RLIMIT_CPU soft (SIGXCPU); hard = soft + 1 (SIGKILL)
    memory_bytes: int = 1 << 30         # RLIMIT_AS, per process
    nproc: int = 64                     # RLIMIT_NPROC, per sandbox (threads count)
    fsize_bytes: int = 16 << 20         # RLIMIT_FSIZE, largest file a program may write
    nofile: int = 256                   # RLIMIT_NOFILE
    workdir_bytes: int = 64 << 20       # tmpfs size of the work directory (+ /tmp), and of /dev/shm
    stdout_bytes: int = 1 << 20         # kill the program once a stream passes this
    stderr_bytes: int = 1 << 20


def init_argv(lim: Limits, nproc: bool = True) -> list[str]:
    """pid 1 inside: set the rlimits, run the program as a child (so it keeps normal signal semantics: pid 1
    ignores signals it has no handler for), reap orphans, exit with the program's status. `; exit` keeps bash
    from exec'ing the program in its own place. Exit 125 with a message if a limit cannot be set."""
    u = f" -u {lim.nproc}" if nproc else ""
    script = (f"ulimit -c 0 -n {lim.nofile}{u} -v {lim.memory_bytes // 1024} -f {lim.fsize_bytes // 1024} "
              f"&& ulimit -S -t {lim.cpu_s} && ulimit -H -t {lim.cpu_s + 1} "
              f"|| {{ echo '{INIT_NAME}: cannot set the rlimits' >&2; exit 125; }}; \"$@\"; exit $?")
    return ["bash", "-c", script, INIT_NAME]


def _which(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/bin/{name}") if os.access(p, os.X_OK)),
                                      None)


@dataclass
class Sandbox:
    limits: Limits = field(default_factory=Limits)
    unsafe: bool = False                # run without bwrap (rlimits and timeouts only)
    slots: int = 1                      # how many runs may be in flight at once (one uid each)
    uid_base: int = UID_BASE            # as root, uids are reserved from here up
    reap: bool = True                   # as root, kill any process of the run's uid found after it

    def __post_init__(self):
        self.as_root = os.geteuid() == 0
        self.setpriv = _which("setpriv") if self.as_root else None
        if self.as_root and self.setpriv is None:
            raise UsageError("setpriv (util-linux) not found; install util-linux to run completions")
        self._locks: list[int] = []
        self.uids = self._reserve_uids() if self.as_root else [os.geteuid()] * max(1, self.slots)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for u in self.uids:
            self._free.put(u)
        self.bwrap = None if self.unsafe else _which("bwrap")
        if not self.unsafe and self.bwrap is None:
            raise UsageError("bubblewrap (bwrap) is not installed, so completions cannot be run safely; "
                             + INSTALL_HINT)
        self._flags = [] if self.unsafe else self._static_flags()
        # Not root and no bwrap: RLIMIT_NPROC would count every process of the user, so it is left alone.
        self._init = init_argv(self.limits, nproc=not self.unsafe or self.as_root)
        self.isolation = self._describe()
        if not self.unsafe:
            self._self_test()

    def _reserve_uids(self) -> list[int]:
        """Hold an flock per uid for this sandbox's lifetime, so two harness processes never share a uid (each
        would kill the other's programs as leftovers)."""
        os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
        uids = []
        for u in range(self.uid_base, self.uid_base + 65536):
            fd = os.open(os.path.join(LOCK_DIR, str(u)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self._locks.append(fd)
            uids.append(u)
            if len(uids) == max(1, self.slots):
                return uids
        raise UsageError(f"no free sandbox uid in {self.uid_base}..{self.uid_base + 65535}; "
                         f"remove stale locks in {LOCK_DIR}")

    def close(self) -> None:
        """Give the reserved uids back (also done when the object is collected)."""
        for fd in self._locks:
            os.close(fd)
        self._locks = []

    def __del__(self):
        if getattr(self, "_locks", None):
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- what a report records --------------------------------------------------------------------------
    def _describe(self) -> dict:
        uid = (f"one unprivileged uid per parallel slot, {min(self.uids)}..{max(self.uids)} (dropped from root "
               "with setpriv, no supplementary groups)" if self.as_root
               else f"the calling user's uid {os.geteuid()} (not root: cannot switch uid)")
        d = {"kind": "none" if self.unsafe else "bwrap", "uid": uid, "limits": asdict(self.limits),
             "rlimits_via": "ulimit in the sandbox's pid 1 before the program starts", "init": self._init[:3],
             "env": ENV, "workdir": WORKDIR, "cgroup": "not used", "stdin": "/dev/null"}
        if self.unsafe:
            d["warning"] = ("UNSAFE: --unsafe-no-sandbox ran completions directly on this machine with only "
                            "rlimits, a wall clock and a process-group kill; they could read and write your files "
                            "and use the network")
            d["workdir"] = "a fresh host temporary directory per run"
            if not self.as_root:
                d["limits"]["nproc"] = None
            return d
        ver = subprocess.run([self.bwrap, "--version"], capture_output=True, text=True).stdout.strip()
        d.update({"bwrap": self.bwrap, "bwrap_version": ver.split()[-1] if ver else None,
                  "flags": [*self._flags, "(--perms/--file per work file)", *SEAL],
                  "network": "none (new, empty network namespace)",
                  "filesystem": "read-only binds of " + ", ".join(f"/{e}" for e in ROOT_ENTRIES
                                                                  if os.path.lexists(f"/{e}"))
                  + f"; tmpfs work dir ({self.limits.workdir_bytes} bytes) with /tmp inside it, tmpfs /dev/shm of the "
                  "same size; everything else read-only; fresh /proc and /dev"})
        return d

    def _static_flags(self) -> list[str]:
        # --as-pid-1 with our init as pid 1: bwrap's monitor then reaps pid 1 itself. (With bwrap's own init it
        # exits without reaping it, and under a host init that does not reap, like a bare container's, those
        # zombies pile up.) When pid 1 exits the kernel kills the rest of the namespace.
        a = ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
             "--as-pid-1", "--cap-drop", "ALL", "--clearenv"]
        for e in ROOT_ENTRIES:
            p = f"/{e}"
            if os.path.islink(p):
                a += ["--symlink", os.readlink(p), p]
            elif os.path.isdir(p):
                a += ["--ro-bind", p, p]
        size = str(self.limits.workdir_bytes)
        a += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--size", size, "--tmpfs",
              "/sandbox", "--dir", WORKDIR, "--dir", "/sandbox/tmp", "--symlink", "sandbox/tmp", "/tmp",
              "--chdir", WORKDIR]
        for k, v in ENV.items():
            a += ["--setenv", k, v]
        return a

    def _self_test(self) -> None:
        r = self.run(["true"], {})
        if r.exit_code != 0:
            msg = (r.sandbox_error or r.stderr.decode("utf-8", "replace")).strip()
            raise UsageError(f"bubblewrap ({self.bwrap}) cannot start a sandbox here: {msg[:300]}. It needs "
                             "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu "
                             "24.04 also kernel.apparmor_restrict_unprivileged_userns=0); otherwise pass "
                             "--unsafe-no-sandbox to run completions without isolation")

    # -- one run ------------------------------------------------------------------------------------------
    def run(self, argv: Sequence[str], files: Mapping[str, bytes | tuple[bytes, int]],
            wall_s: float | None = None) -> RunResult:
        """Run `argv` in a fresh work directory holding `files` (relative path -> bytes or (bytes, mode))."""
        for rel in files:
            if rel.startswith("/") or ".." in rel.split("/") or not rel.strip("/"):
                raise ValueError(f"sandbox file paths must be relative and stay in the work directory: {rel!r}")
        uid = self._free.get()
        try:
            return (self._run_unsafe if self.unsafe else self._run_bwrap)(list(argv), files, uid, wall_s)
        finally:
            self._free.put(uid)

    def _as(self, uid: int) -> list[str]:
        return [self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"] if self.as_root else []

    def _run_bwrap(self, argv, files, uid, wall_s) -> RunResult:
        fds, args, dirs = [], [], set()
        info_r = None
        try:
            for rel, content in sorted(files.items()):
                data, mode = content if isinstance(content, tuple) else (content, 0o644)
                parts = rel.split("/")
                for i in range(1, len(parts)):
                    d = "/".join(parts[:i])
                    if d not in dirs:
                        dirs.add(d)
                        args += ["--dir", f"{WORKDIR}/{d}"]
                fd = os.memfd_create("sandbox-file", os.MFD_CLOEXEC)
                fds.append(fd)
                _write_all(fd, data)
                os.lseek(fd, 0, os.SEEK_SET)
                args += ["--perms", f"{mode & 0o777:04o}", "--file", str(fd), f"{WORKDIR}/{rel}"]
            info_r, info_w = os.pipe()
            fds.append(info_w)
            cmd = [*self._as(uid), self.bwrap, *self._flags, "--info-fd", str(info_w), *args, *SEAL, "--",
                   *self._init, *argv]
            return self._supervise(cmd, uid, fds, info_r, wall_s)
        finally:
            for fd in fds:  # supervise() empties the list once the child holds its copies
                os.close(fd)
            if info_r is not None:
                os.close(info_r)

    def _run_unsafe(self, argv, files, uid, wall_s) -> RunResult:
        work = tempfile.mkdtemp(prefix="harness-unsafe-")
        try:
            for rel, content in files.items():
                data, mode = content if isinstance(content, tuple) else (content, 0o644)
                p = os.path.join(work, rel)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "wb") as f:
                    f.write(data)
                os.chmod(p, mode & 0o777)
            if self.as_root:
                for d, _, names in os.walk(work):
                    for x in [d, *(os.path.join(d, n) for n in names)]:
                        os.lchown(x, uid, uid)
            env = {**ENV, "HOME": work, "TMPDIR": work}
            return self._supervise([*self._as(uid), *self._init, *argv], uid, [], None, wall_s, cwd=work, env=env)
        finally:
            subprocess.run(["chmod", "-R", "u+rwx", work], capture_output=True)
            shutil.rmtree(work, ignore_errors=True)

    def _supervise(self, cmd, uid, pass_fds, info_r, wall_s, cwd=None, env=None) -> RunResult:
        lim = self.limits
        # Never the host environment: it holds secrets, and LD_PRELOAD (the CLI preloads OpenBLAS) would load
        # into setpriv and bwrap themselves.
        return supervise(cmd, wall_s=lim.wall_s if wall_s is None else wall_s, stdout_cap=lim.stdout_bytes,
                         stderr_cap=lim.stderr_bytes, pass_fds=pass_fds, info_r=info_r,
                         uid=uid if self.as_root else None, reap=self.as_root and self.reap, cwd=cwd or "/",
                         env=env or {"PATH": ENV["PATH"]})


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
