"""One control group per sandboxed run: a memory cap and a process cap on the whole sandbox, not per process.

RLIMIT_AS bounds one process's address space, so a program can hold many times its limit across processes, in
memfds, in tmpfs or in /dev/shm. A memory cgroup charges all of that to the run and OOM-kills inside it at the
cap; `pids.max` bounds every process and thread of the run together. Two kernels' interfaces are handled:

- cgroup v2 (the unified hierarchy): a `harness-sandbox-<pid>-<n>` group is made at the lowest level of our own
  cgroup's ancestry where the `memory` and `pids` controllers can be delegated to children (the "no internal
  processes" rule keeps them off a group that holds processes, so that is usually the root); each run gets a
  child with `memory.max`, `memory.swap.max` = 0 and `pids.max`.
- cgroup v1 (separate `memory` and `pids` hierarchies, as on some CI machines): a `harness-sandbox-<pid>-<n>` group
  below our own group in each hierarchy, a child per run with `memory.limit_in_bytes` (and
  `memory.memsw.limit_in_bytes` where swap is accounted, so nothing is swapped out past the cap) and `pids.max`.

Nothing of a run may start outside its groups: bwrap waits (`--block-fd`) until we have moved it and the
sandbox's pid 1 in (`attach`); without bwrap, the run's first process joins by writing its own pid before it
execs the program (`join_argv`). Each sandbox slot keeps its groups from run
to run (making and removing a memory cgroup costs milliseconds): `begin()` resets the peak and notes the OOM
count, `stats()` after the run gives the run's peak memory and OOM kills, `empty()` kills anything left, and
`finish()` removes the groups when the slot is given back. Where no cgroup can be made (not root,
no writable hierarchy, a controller missing) `CgroupPool.reason` says why and runs go on with rlimits only."""
from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass

from .supervise import INIT_NAME

_JOIN = ('while [ "$1" != -- ]; do echo $$ >"$1" || { echo "' + INIT_NAME + ': cannot join the cgroup $1" >&2; '
         'exit 125; }; shift; done; shift; exec "$@"')


_POOLS = itertools.count()  # several pools (sandboxes) in one process each get their own parent group


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _keyed(text: str | None, key: str) -> int:
    """The integer after `key` in a flat-keyed cgroup file ("oom_kill 3"), 0 when absent."""
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return 0


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, super options) of every cgroup mount, from /proc/self/mountinfo."""
    out = []
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) >= 5 and len(rest) >= 3 and rest[0] in ("cgroup", "cgroup2"):
            out.append((fields[4].replace("\\040", " "), rest[0], set(rest[2].split(","))))
    return out


def _own_path(controller: str | None) -> str:
    """This process's cgroup path in the v2 hierarchy (controller None) or in a v1 controller's hierarchy."""
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        num, ctrls, path = line.split(":", 2)
        if (controller is None and num == "0" and ctrls == "") or (controller and controller in ctrls.split(",")):
            return path
    return "/"


@dataclass
class Cgroup:
    """The groups of one run (one directory per hierarchy: one on v2, memory + pids on v1)."""
    version: str
    dirs: list[str]

    @property
    def procs(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs]

    def attach(self, pids: list[int]) -> None:
        """Move processes into the groups (their children are born inside)."""
        for procs in self.procs:
            for pid in pids:
                _write(procs, str(pid))

    def join_argv(self, cmd: list[str]) -> list[str]:
        """`cmd` preceded by a shell that moves itself into the groups first (it then execs `cmd`)."""
        return ["/bin/sh", "-c", _JOIN, INIT_NAME, *self.procs, "--", *cmd]

    def _file(self, name: str) -> str | None:
        for d in self.dirs:
            if os.path.exists(os.path.join(d, name)):
                return os.path.join(d, name)
        return None

    def begin(self) -> None:
        """Start a run in a group that served earlier runs: reset its peak and remember its OOM count."""
        self._oom0 = self._oom_total()
        mem = self._file("memory.max_usage_in_bytes")
        try:
            if mem:
                _write(mem, "0")
            elif self.version == "v2":
                _write(os.path.join(self.dirs[0], "memory.peak"), "reset")  # Linux 6.12+; else peak is since creation
        except OSError:
            pass

    def _oom_total(self) -> int:
        """OOM kills in the groups since they were made."""
        f = self._file("memory.events" if self.version == "v2" else "memory.oom_control")
        return _keyed(_read(f) if f else None, "oom_kill")

    def stats(self) -> dict:
        """Peak memory (bytes, None when the kernel does not keep it), OOM kills since begin(), and fork refusals
        at pids.max."""
        f = self._file("memory.peak" if self.version == "v2" else "memory.max_usage_in_bytes")
        peak = _read(f) if f else None
        pev = self._file("pids.events")
        return {"memory_peak_bytes": int(peak) if peak and peak.strip().isdigit() else None,
                "oom_kills": self._oom_total() - getattr(self, "_oom0", 0),
                "pids_max_hits": _keyed(_read(pev) if pev else None, "max")}

    def empty(self) -> int:
        """Kill whatever is still in the groups (nothing, when the run's pid namespace is gone); how many."""
        pids = {p for d in self.dirs for p in (_read(os.path.join(d, "cgroup.procs")) or "").split()}
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        return len(pids)

    def finish(self) -> dict:
        """Stats, then kill anything left in the groups and remove them."""
        st = self.stats()
        for d in self.dirs:
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if self.version == "v2" and os.path.exists(os.path.join(d, "cgroup.kill")):
                        try:
                            _write(os.path.join(d, "cgroup.kill"), "1")
                        except OSError:
                            pass
                    for pid in (_read(os.path.join(d, "cgroup.procs")) or "").split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except (OSError, ValueError):
                            pass
                    time.sleep(0.01)
        return st


class CgroupPool:
    """Finds where this machine lets us make cgroups, once; then makes one group per run with `create()`.

    `version` is "v2", "v1" or None; when None, `reason` says what was missing."""

    def __init__(self, memory_bytes: int, pids: int):
        self.memory_bytes, self.pids = int(memory_bytes), int(pids)
        self.version: str | None = None
        self.reason: str | None = None
        self.parents: list[str] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._name = f"harness-sandbox-{os.getpid()}-{next(_POOLS)}"
        if os.geteuid() != 0:
            self.reason = "not root: a cgroup per run needs root (or a delegated cgroup, which is not looked for)"
            return
        mounts = _mounts()
        errors = []
        for find in (self._find_v2, self._find_v1):
            try:
                if find(mounts):
                    return
            except OSError as e:
                errors.append(f"{find.__name__[6:]}: {e.strerror or e}")
        self.reason = ("no cgroup with the memory and pids controllers could be made here"
                       + (f" ({'; '.join(errors)})" if errors else "")
                       + "; each process keeps its rlimits, but the sandbox as a whole has no memory cap")

    def _find_v2(self, mounts) -> bool:
        mnt = next((m for m, t, _ in mounts if t == "cgroup2"), None)
        if mnt is None or "memory" not in (_read(os.path.join(mnt, "cgroup.controllers")) or "").split():
            return False
        own = _own_path(None).strip("/")
        parts = own.split("/") if own else []
        for i in range(len(parts), -1, -1):  # our own group first, then its ancestors up to the root
            base = os.path.join(mnt, *parts[:i])
            ctl = os.path.join(base, "cgroup.subtree_control")
            have = set((_read(ctl) or "").split())
            try:
                if not {"memory", "pids"} <= have:
                    _write(ctl, "+memory +pids")
                parent = os.path.join(base, self._name)
                os.makedirs(parent, exist_ok=True)
                _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids")
            except OSError:
                continue
            self.version, self.parents = "v2", [parent]
            return True
        return False

    def _find_v1(self, mounts) -> bool:
        parents = []
        for ctrl in ("memory", "pids"):
            mnt = next((m for m, t, opts in mounts if t == "cgroup" and ctrl in opts), None)
            if mnt is None:
                raise OSError(f"no v1 {ctrl} hierarchy is mounted")
            parent = os.path.join(mnt, _own_path(ctrl).strip("/"), self._name)
            os.makedirs(parent, exist_ok=True)
            parents.append(parent)
        self.version, self.parents = "v1", parents
        return True

    def describe(self) -> dict:
        if self.version is None:
            return {"version": None, "reason": self.reason}
        return {"version": self.version, "memory_bytes": self.memory_bytes, "pids": self.pids,
                "swap": "none (memory.swap.max 0)" if self.version == "v2" else "memsw capped at the same bytes "
                "where swap is accounted", "where": self.parents}

    def create(self) -> Cgroup:
        with self._lock:
            name = f"run-{next(self._seq)}"
        dirs = [os.path.join(p, name) for p in self.parents]
        for d in dirs:
            os.mkdir(d)
        cg = Cgroup(self.version, dirs)
        try:
            if self.version == "v2":
                d = dirs[0]
                _write(os.path.join(d, "memory.max"), str(self.memory_bytes))
                if os.path.exists(os.path.join(d, "memory.swap.max")):
                    _write(os.path.join(d, "memory.swap.max"), "0")
                _write(os.path.join(d, "pids.max"), str(self.pids))
            else:
                mem, pids = dirs
                _write(os.path.join(mem, "memory.limit_in_bytes"), str(self.memory_bytes))
                if os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
                    _write(os.path.join(mem, "memory.memsw.limit_in_bytes"), str(self.memory_bytes))
                _write(os.path.join(pids, "pids.max"), str(self.pids))
        except OSError:
            cg.finish()
            raise
        return cg

    def close(self) -> None:
        for p in self.parents:
            try:
                os.rmdir(p)
            except OSError:
                pass
        self.parents = []
