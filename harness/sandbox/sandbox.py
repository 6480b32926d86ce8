"""Run one untrusted program under bubblewrap, with a judge it cannot reach, a memory cap on the whole sandbox,
rlimits, a wall clock, capped output and nothing left behind.

Layers (each one is recorded in `Sandbox.isolation`; supervise.py watches the process tree):
- bwrap: new pid/net/ipc/uts/cgroup namespaces (no network at all), a new session, die-with-parent. The root is
  built from read-only binds of /usr, /etc and the /bin-style links only, so /root, /home, /tmp, /work, /var,
  /opt and the project are simply absent; the sandbox's own root and /dev are then remounted read-only.
- two users, as root (userns.py): the judge (uid 0 inside) runs the tests, the candidate (uid 3000 inside, a
  different host uid) runs the program under test. The candidate cannot signal, debug or read the judge's
  processes (different uid, no capabilities, /proc mounted with hidepid=2 so it sees only its own processes),
  cannot read the judge's files (/sandbox/judge, mode 0700: the tests and anything private to them) and cannot
  replace the `./candidate.sh` the tests call (a read-only bind mount of a wrapper that switches to the
  candidate's uid and runs the program, kept in /sandbox/cand). The verdict is the judge's exit status, which
  travels from the judge through the sandbox's init and bwrap to us. The judge keeps only the capabilities a
  test runner needs (switch to the candidate, signal and inspect its processes, read and write its files).
  Without root there is one uid for both, and the isolation record says that the judge is not separated.
- seccomp (seccomp.py): ptrace, process_vm_readv/writev, pidfd_getfd, kcmp, new user namespaces and other
  kernel surfaces are denied to every process in the sandbox.
- a cgroup per run (cgroups.py; v2, or the v1 memory and pids controllers): one memory cap and one process cap
  for the whole sandbox, tmpfs and memfds included; an OOM kill in the group is recorded. Where no cgroup can
  be made the isolation record says why.
- the work directory is a size-capped tmpfs inside the sandbox; its files are copied in from memfds by
  bwrap (`--file`), so nothing is written to the host disk and there is nothing to clean up afterwards. Under a
  cgroup it is sized above the cgroup's memory cap (`tmpfs_bytes`): the judge and the candidate share it, and a
  candidate that filled it would make the tests' own writes fail (an expected-output file written empty, then
  compared with an output that could not be written either: a pass). Above the cap, filling it is an OOM kill,
  which makes the run `oom`, and no write ever fails for want of space.
- as root, each concurrent sandbox (slot) has its own pair of unprivileged host uids (from UID_BASE, reserved
  with an flock so no other harness process uses them), switched to by `setpriv` so that Python can spawn with
  vfork: a plain fork of a harness holding a model costs tens of milliseconds per run. After each run every
  process of those uids must be gone.
- rlimits (processes, address space, file size, CPU, open files, no core) are set by the sandbox's pid 1,
  a bash that then runs the program as its child. RLIMIT_NPROC counts each uid's processes in this sandbox
  only, so a fork bomb cannot starve the other workers.
- stdout/stderr are read as they come and capped; at the wall clock or a cap the whole pid namespace is killed.
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

from ..errors import UsageError
from . import seccomp
from .cgroups import CgroupPool
from .spec import (CAND_DIR, CANDIDATE, CANDIDATE_ID, ENV, INSTALL_HINT, JUDGE_CAPS, JUDGE_DIR, LOCK_DIR,  # noqa: F401
                   ROOT_ENTRIES, SEAL, UID_BASE, WORKDIR, WRAPPER, AS_CANDIDATE, Job, Limits, Slot,
                   as_candidate_script, init_argv, wrapper_script)
from .supervise import RunResult, supervise
from .userns import make_userns

def isolation_gaps() -> dict[str, str]:
    """What this machine cannot give the sandbox, by layer ("bwrap", "judge", "cgroup", "seccomp"); empty when
    every layer is there. The security suites fail on these under CI and skip elsewhere, saying so."""
    gaps = {}
    if _which("bwrap") is None:
        gaps["bwrap"] = "bubblewrap is not installed"
    if os.geteuid() != 0:
        gaps["judge"] = "not root: the tests cannot run as another uid than the candidate"
    pool = CgroupPool(1 << 30, 64)
    if pool.version is None:
        gaps["cgroup"] = f"no cgroup per run: {pool.reason}"
    pool.close()
    if seccomp.seccomp_filter()[0] is None:
        gaps["seccomp"] = f"no seccomp filter: {seccomp.seccomp_filter()[1]}"
    return gaps


def _which(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/bin/{name}") if os.access(p, os.X_OK)),
                                      None)


@dataclass
class Sandbox:
    limits: Limits = field(default_factory=Limits)
    unsafe: bool = False                # run without bwrap (rlimits and timeouts only)
    slots: int = 1                      # how many runs may be in flight at once (two uids each)
    uid_base: int = UID_BASE            # as root, uids are reserved from here up
    reap: bool = True                   # as root, kill any process of the run's uids found after it

    def __post_init__(self):
        self.as_root = os.geteuid() == 0
        self.setpriv = _which("setpriv") if self.as_root else None
        if self.as_root and self.setpriv is None:
            raise UsageError("setpriv (util-linux) not found; install util-linux to run completions")
        self._locks: list[int] = []
        self._slots = self._reserve() if self.as_root else [Slot(os.geteuid(), os.geteuid())
                                                            for _ in range(max(1, self.slots))]
        self.uids = sorted({u for s in self._slots for u in (s.owner, s.candidate)})
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for s in self._slots:
            self._free.put(s)
        self.bwrap = None if self.unsafe else _which("bwrap")
        if not self.unsafe and self.bwrap is None:
            raise UsageError("bubblewrap (bwrap) is not installed, so completions cannot be run safely; "
                             + INSTALL_HINT)
        self.separated, self.separation_reason = False, None
        if self.unsafe:
            self.separation_reason = "--unsafe-no-sandbox: no sandbox, so no separate judge"
        elif not self.as_root:
            self.separation_reason = ("not root: a user namespace with two users needs root to write its maps, so "
                                      "the tests and the candidate share one uid")
        else:
            try:
                for s in self._slots:
                    s.userns = make_userns(self.setpriv, s.owner, s.candidate)
                self.separated = True
            except OSError as e:
                self.separation_reason = f"the two-user namespace could not be made ({e})"
        self.seccomp_bpf, self.seccomp_reason = (None, "no sandbox") if self.unsafe else seccomp.seccomp_filter()
        self.cgroups = CgroupPool(self.limits.sandbox_memory_bytes, self.limits.sandbox_pids)
        if self.cgroups.version is not None:
            for s in self._slots:
                s.cgroup = self.cgroups.create()
        # the size of the work dir's and /dev/shm's tmpfs (see the module's docstring for why above the cap)
        self.tmpfs_bytes = self.limits.workdir_bytes + (self.limits.sandbox_memory_bytes
                                                        if self.cgroups.version is not None else 0)
        self._flags = [] if self.unsafe else self._static_flags(judge=False)
        self._judge_flags = [] if self.unsafe else self._static_flags(judge=True)
        # Not root and no bwrap: RLIMIT_NPROC would count every process of the user, so it is left alone.
        nproc = not self.unsafe or self.as_root
        self._init = init_argv(self.limits, nproc=nproc)
        self._judge_init = init_argv(self.limits, nproc=nproc, hide_proc=self.separated)
        self.isolation = self._describe()
        if not self.unsafe:
            self._self_test()

    def _reserve(self) -> list[Slot]:
        """Hold an flock per pair of uids for this sandbox's lifetime, so two harness processes never share a uid
        (each would kill the other's programs as leftovers)."""
        os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
        slots = []
        for u in range(self.uid_base, self.uid_base + 65536, 2):
            held = []
            for uid in (u, u + 1):  # one lock file per uid, as any harness version takes them
                fd = os.open(os.path.join(LOCK_DIR, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held.append(fd)
                except OSError:
                    os.close(fd)
                    break
            if len(held) < 2:
                for fd in held:
                    os.close(fd)
                continue
            self._locks += held
            slots.append(Slot(u, u + 1))
            if len(slots) == max(1, self.slots):
                return slots
        raise UsageError(f"no free sandbox uid in {self.uid_base}..{self.uid_base + 65535}; "
                         f"remove stale locks in {LOCK_DIR}")

    def close(self) -> None:
        """Give the reserved uids, the namespaces and the cgroups back (also done when the object is collected)."""
        for s in getattr(self, "_slots", []):
            if s.userns is not None:
                os.close(s.userns)
                s.userns = None
            if s.cgroup is not None:
                s.cgroup.empty()
                s.cgroup.finish()
                s.cgroup = None
        for fd in getattr(self, "_locks", []):
            os.close(fd)
        self._locks = []
        if getattr(self, "cgroups", None) is not None:
            self.cgroups.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit the modules close() needs may be gone
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- what a report records --------------------------------------------------------------------------
    def _describe(self) -> dict:
        uid = (f"two unprivileged uids per parallel slot (judge and candidate), {min(self.uids)}..{max(self.uids)} "
               "(dropped from root with setpriv, no supplementary groups)" if self.as_root
               else f"the calling user's uid {os.geteuid()} (not root: cannot switch uid)")
        judge = ({"separated": True, "tests_run_as": "uid 0 inside (host uid of the slot's owner), capabilities "
                  + ", ".join(JUDGE_CAPS) + " in the sandbox's user namespace only",
                  "untrusted_alone_runs_as": "uid 0 inside (the slot owner's host uid) with an empty capability "
                                             "bounding set (a program without a judge)",
                  "candidate_runs_as": f"uid {CANDIDATE_ID} inside (another host uid), no capabilities, group 0",
                  "private_files": f"{JUDGE_DIR} (0700, root inside; each file a read-only bind mount)",
                  "proc": "hidepid=2",
                  "candidate_entry": f"{WRAPPER} (read-only bind mount)", "verdict": "the judge's exit status"}
                 if self.separated else {"separated": False, "reason": self.separation_reason})
        d = {"kind": "none" if self.unsafe else "bwrap", "uid": uid, "limits": asdict(self.limits),
             "rlimits_via": "ulimit in the sandbox's pid 1 before the program starts", "init": self._judge_init[:3],
             "env": ENV, "workdir": WORKDIR, "cgroup": self.cgroups.describe(), "judge": judge,
             "seccomp": ({"loaded": False, "reason": self.seccomp_reason} if self.seccomp_bpf is None
                         else seccomp.describe()), "stdin": "/dev/null"}
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
                  "flags": [*self._judge_flags, "(--perms/--file per work file)", *SEAL],
                  "network": "none (new, empty network namespace)",
                  "filesystem": "read-only binds of " + ", ".join(f"/{e}" for e in ROOT_ENTRIES
                                                                  if os.path.lexists(f"/{e}"))
                  + f"; tmpfs work dir ({self.tmpfs_bytes} bytes) with /tmp inside it, tmpfs /dev/shm of the "
                  "same size; everything else read-only; fresh /proc and /dev",
                  "full_disk": ("the tmpfs is larger than the cgroup's memory cap: filling it is an OOM kill (run "
                                "status oom), never a failed write of the tests" if self.cgroups.version is not None
                                else "no cgroup: a program can fill the tmpfs, and the tests' own writes can then "
                                "fail")})
        return d

    def _static_flags(self, judge: bool = True) -> list[str]:
        """bwrap's flags: for a judged run, init and tests as uid 0 inside with JUDGE_CAPS; for an untrusted
        program alone, init and program as uid 0 inside with no capability at all (an empty bounding set: not
        even exec gives root any)."""
        # --as-pid-1 with our init as pid 1: bwrap's monitor then reaps pid 1 itself. (With bwrap's own init it
        # exits without reaping it, and under a host init that does not reap, like a bare container's, those
        # zombies pile up.) When pid 1 exits the kernel kills the rest of the namespace.
        if self.separated:  # the user namespace is ours (--userns FD, per run); bwrap makes the others
            a = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                 "--uid", "0", "--gid", "0", "--cap-drop", "ALL"]
            for c in JUDGE_CAPS if judge else ():
                a += ["--cap-add", f"CAP_{c.upper()}"]
        else:
            a = ["--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
        a += ["--die-with-parent", "--new-session", "--as-pid-1", "--clearenv"]
        for e in ROOT_ENTRIES:
            p = f"/{e}"
            if os.path.islink(p):
                a += ["--symlink", os.readlink(p), p]
            elif os.path.isdir(p):
                a += ["--ro-bind", p, p]
        size = str(self.tmpfs_bytes)
        a += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm", "--size",
              size, "--tmpfs", "/sandbox", "--perms", "0775", "--dir", WORKDIR, "--perms", "1777", "--dir", "/sandbox/tmp",
              "--symlink", "sandbox/tmp", "/tmp", "--perms", "0700", "--dir", JUDGE_DIR, "--perms", "0755", "--dir",
              CAND_DIR, "--chdir", WORKDIR]
        for k, v in ENV.items():
            a += ["--setenv", k, v]
        return a

    def _self_test(self) -> None:
        r = self.run(["true"], {})
        if r.exit_code != 0:
            msg = (r.sandbox_error or r.stderr.decode("utf-8", "replace")).strip()
            if r.timed_out:
                raise UsageError(f"a bare sandbox running `true` did not finish within the time limit of "
                                 f"{self.limits.wall_s} s; raise the limit (e.g. --timeout 10)")
            raise UsageError(f"bubblewrap ({self.bwrap}) cannot start a sandbox here: {msg[:300]}. It needs "
                             "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu "
                             "24.04 also kernel.apparmor_restrict_unprivileged_userns=0); otherwise pass "
                             "--unsafe-no-sandbox to run completions without isolation")

    # -- one run ------------------------------------------------------------------------------------------
    def run(self, argv: Sequence[str], files: Mapping[str, bytes | tuple[bytes, int]],
            wall_s: float | None = None) -> RunResult:
        """Run untrusted `argv` (as the candidate) in a fresh work directory holding `files` (relative path ->
        bytes or (bytes, mode))."""
        return self.execute(Job(list(argv), files), wall_s)

    def execute(self, job: Job, wall_s: float | None = None) -> RunResult:
        for rel in [*job.files, *job.private]:
            if rel.startswith("/") or ".." in rel.split("/") or not rel.strip("/"):
                raise ValueError(f"sandbox file paths must be relative and stay in the work directory: {rel!r}")
        slot = self._free.get()
        try:
            return (self._run_unsafe if self.unsafe else self._run_bwrap)(job, slot, wall_s)
        finally:
            self._free.put(slot)

    def _run_bwrap(self, job: Job, slot: Slot, wall_s) -> RunResult:
        fds, args, dirs = [], [], set()
        info_r = None

        def memfd(data: bytes) -> int:
            fd = os.memfd_create("sandbox-file", os.MFD_CLOEXEC)
            fds.append(fd)
            _write_all(fd, data)
            os.lseek(fd, 0, os.SEEK_SET)
            return fd

        try:
            for base, entries in ((WORKDIR, job.files), (JUDGE_DIR, job.private)):
                for rel, content in sorted(entries.items()):
                    data, mode = content if isinstance(content, tuple) else (content, 0o644)
                    parts = rel.split("/")
                    for i in range(1, len(parts)):
                        d = f"{base}/{'/'.join(parts[:i])}"
                        if d not in dirs:
                            dirs.add(d)
                            args += ["--perms", "0775" if base == WORKDIR else "0700", "--dir", d]
                    if base == WORKDIR:  # the candidate (group 0) may change the work files as the judge may
                        mode = mode | (mode & 0o600) >> 3
                        args += ["--perms", f"{mode & 0o777:04o}", "--file", str(memfd(data)), f"{base}/{rel}"]
                    else:  # read-only bind mounts: not even the judge, lured by a symlink, can write the tests
                        args += ["--perms", "0600", "--ro-bind-data", str(memfd(data)), f"{base}/{rel}"]
            if job.candidate is not None:
                args += ["--perms", "0644", "--file", str(memfd(job.candidate)), CANDIDATE,
                         "--perms", "0755", "--ro-bind-data", str(memfd(wrapper_script(self.separated))), WRAPPER,
                         "--perms", "0755", "--file", str(memfd(as_candidate_script(self.separated))), AS_CANDIDATE,
                         "--setenv", "HARNESS_AS_CANDIDATE", AS_CANDIDATE]
            if self.seccomp_bpf is not None:
                args += ["--seccomp", str(memfd(self.seccomp_bpf))]
            info_r, info_w = os.pipe()
            fds.append(info_w)
            userns = ["--userns", str(slot.userns)] if slot.userns is not None else []
            release = None
            if slot.cgroup is not None:  # bwrap waits on block_r until the run is inside its cgroup
                block_r, block_w = os.pipe()
                fds.append(block_r)
                args += ["--block-fd", str(block_r)]
                release = (block_w, slot.cgroup.attach)
            judged = job.candidate is not None
            cmd = [*self._as(slot.owner), self.bwrap, *userns, *(self._judge_flags if judged else self._flags),
                   "--info-fd", str(info_w), *args, *SEAL, "--", *(self._judge_init if judged else self._init),
                   *job.argv]
            return self._supervise(cmd, slot, fds, info_r, wall_s, release=release,
                                   keep_fds=[slot.userns] if slot.userns is not None else [])
        finally:
            for fd in fds:  # supervise() empties the list once the child holds its copies
                os.close(fd)
            if info_r is not None:
                os.close(info_r)

    def _as(self, uid: int) -> list[str]:
        return [self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"] if self.as_root else []

    def _run_unsafe(self, job: Job, slot: Slot, wall_s) -> RunResult:
        root = tempfile.mkdtemp(prefix="harness-unsafe-")
        work = os.path.join(root, "work")
        try:
            out = {work: dict(job.files), os.path.join(root, "judge"): dict(job.private)}
            if job.candidate is not None:
                out[os.path.join(root, "cand")] = {"candidate.sh": job.candidate}
                out[work]["candidate.sh"] = (wrapper_script(False, f"{root}/cand/candidate.sh"), 0o755)
            for base, entries in out.items():
                os.makedirs(base, exist_ok=True)
                for rel, content in entries.items():
                    data, mode = content if isinstance(content, tuple) else (content, 0o644)
                    p = os.path.join(base, rel)
                    os.makedirs(os.path.dirname(p), exist_ok=True)
                    with open(p, "wb") as f:
                        f.write(data)
                    os.chmod(p, mode & 0o777)
            if self.as_root:
                for d, _, names in os.walk(root):
                    for x in [d, *(os.path.join(d, n) for n in names)]:
                        os.lchown(x, slot.owner, slot.owner)
            env = {**ENV, "HOME": work, "TMPDIR": work}
            argv = [f"{root}/{a[len('/sandbox/'):]}" if a.startswith("/sandbox/") else a for a in job.argv]
            return self._supervise([*self._as(slot.owner), *self._init, *argv], slot, [], None, wall_s, cwd=work,
                                   env=env)
        finally:
            subprocess.run(["chmod", "-R", "u+rwx", root], capture_output=True)
            shutil.rmtree(root, ignore_errors=True)

    def _supervise(self, cmd, slot: Slot, pass_fds, info_r, wall_s, cwd=None, env=None, keep_fds=(),
                   release=None) -> RunResult:
        lim = self.limits
        cg = slot.cgroup
        if cg is not None:
            cg.begin()
            if release is None:  # no bwrap to hold the program back: it joins by itself
                cmd = cg.join_argv(cmd)
        # Never the host environment: it holds secrets, and LD_PRELOAD (the CLI preloads OpenBLAS) would load
        # into setpriv and bwrap themselves.
        try:
            r = supervise(cmd, wall_s=lim.wall_s if wall_s is None else wall_s, stdout_cap=lim.stdout_bytes,
                          stderr_cap=lim.stderr_bytes, pass_fds=pass_fds, keep_fds=list(keep_fds), info_r=info_r,
                          owner=slot.owner if self.as_root else None,
                          reap_uids=sorted({slot.owner, slot.candidate}) if self.as_root and self.reap else [],
                          cwd=cwd or "/", env=env or {"PATH": ENV["PATH"]}, release=release)
        finally:
            if cg is not None:
                r_left = cg.empty()
        if cg is not None:
            stats = cg.stats()
            r.oom_kills, r.memory_peak_bytes = stats["oom_kills"], stats["memory_peak_bytes"]
            r.leftover += r_left
        return r


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
