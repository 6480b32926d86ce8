"""Watch one untrusted process tree: read stdout/stderr incrementally (a selector, no polling sleeps), kill it
when a stream passes its cap or the wall clock runs out, and make sure nothing of it survives.

With bubblewrap the program's pid namespace is the unit: bwrap's `--info-fd` names the host pid of the
namespace's pid 1, which is held as a pidfd (no pid-reuse race). SIGKILL to it makes the kernel kill every
process in the namespace, and the pidfd turns readable only once all of them are gone. Without that proof
(no bwrap, or it failed early), every process still owned by the run's uids is killed and counted
(`leftover`, 0 = contained)."""
from __future__ import annotations

import json
import os
import select
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass

DRAIN_GRACE_S = 1.0   # after the program exits, how long open pipes may still deliver output
INIT_NAME = "sandbox-init"  # $0 of the sandbox's pid 1 (sandbox.init_argv); its own errors start with it


@dataclass
class RunResult:
    exit_code: int | None               # None when the harness killed the program (timeout, output cap)
    stdout: bytes
    stderr: bytes
    duration_s: float
    timed_out: bool = False
    output_limited: str | None = None   # "stdout" or "stderr" when that stream passed its cap
    leftover: int = 0                   # processes of the run's uids found (and killed) after the run
    sandbox_error: str | None = None    # bwrap itself failed to set up
    oom_kills: int = 0                  # processes the run's cgroup OOM-killed (its memory cap was reached)
    memory_peak_bytes: int | None = None  # the run's cgroup's peak memory, where the kernel keeps it


def uid_processes(uid: int) -> list[int]:
    """Live (non-zombie) processes owned by `uid`, from /proc."""
    pids = []
    for e in os.scandir("/proc"):
        if not e.name.isdigit():
            continue
        try:
            if e.stat().st_uid != uid:
                continue
            with open(f"/proc/{e.name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            pids.append(int(e.name))
    return pids


def reap_uid(uid: int, patience_s: float = 2.0) -> int:
    """Kill whatever still runs as `uid`; returns how many processes were found."""
    found: set[int] = set()
    deadline = time.monotonic() + patience_s
    while (pids := uid_processes(uid)) and time.monotonic() < deadline:
        found.update(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)
    return len(found)


def _ns_pidfd(info: bytes, owner: int) -> int | None:
    """A pidfd for the pid that bwrap's --info-fd JSON names, if that process is (still) owned by `owner`."""
    try:
        pid = int(json.loads(info)["child-pid"])
        fd = os.pidfd_open(pid)
    except (ValueError, KeyError, TypeError, OSError):
        return None
    try:
        if os.stat(f"/proc/{pid}").st_uid == owner:  # checked after opening: a recycled pid fails here
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _release(release: tuple[int, object], bwrap_pid: int, info: bytes) -> str | None:
    """Call the join function on bwrap's pid and the sandbox's pid 1, then let the sandbox go on; an error
    message (starting with INIT_NAME, so it is a sandbox error) when the join failed."""
    fd, join = release
    try:
        join([bwrap_pid, int(json.loads(info)["child-pid"])])
        os.write(fd, b"x")
        return None
    except (OSError, ValueError, KeyError) as e:
        return f"{INIT_NAME}: cannot join the run's cgroup: {e}"
    finally:
        os.close(fd)


def supervise(cmd: list[str], *, wall_s: float, stdout_cap: int, stderr_cap: int, pass_fds: list[int],
              keep_fds: list[int] = (), info_r: int | None = None, owner: int | None = None,
              reap_uids: list[int] = (), cwd: str | None = None, env: dict | None = None,
              release: tuple[int, object] | None = None) -> RunResult:
    """Run `cmd` in a new session with stdin from /dev/null. `owner` is the host uid the command switches to
    (setpriv; the pid namespace's pid 1 runs as it); `reap_uids` are every uid the run may use, whose processes
    are killed afterwards unless the pid namespace is proven gone. No user= here: that disables vfork, and forking
    a large harness process costs tens of milliseconds. `pass_fds` are closed here once the child holds its
    copies, `keep_fds` are passed and left open; `info_r` is bwrap's --info-fd pipe. `release` = (fd, join):
    the write end of bwrap's --block-fd and a function of the host pids (bwrap's, the sandbox's pid 1) to call
    before the sandbox may go on, once bwrap has told its pid 1 (a cgroup join: nothing of the program runs
    before it is inside); if `join` raises, the run is killed and reported as a sandbox error."""
    owner = owner if owner is not None else os.geteuid()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    if owner != os.geteuid():  # the program's uids must be able to reopen their pipes (`echo x > /dev/stderr`);
        for fd in (out_w, err_w):  # only a process holding the pipe can name it in /proc/self/fd
            os.fchown(fd, owner, owner)
            os.fchmod(fd, 0o666)
    t0 = time.monotonic()
    try:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, pass_fds=[*pass_fds, *keep_fds],
                             start_new_session=True, cwd=cwd, env=env)
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        for fd in (*pass_fds, out_w, err_w):
            os.close(fd)
        pass_fds.clear()
    out, err, info = bytearray(), bytearray(), bytearray()
    streams = {out_r: (out, stdout_cap, "stdout"), err_r: (err, stderr_cap, "stderr")}
    pidfd = os.pidfd_open(p.pid)
    ns_pidfd = None
    exited, timed_out, limited, join_error = False, False, None, None
    sel = selectors.DefaultSelector()
    try:
        for fd in (*streams, pidfd, *([info_r] if info_r is not None else [])):
            sel.register(fd, selectors.EVENT_READ)
        deadline = t0 + wall_s
        while not exited or any(fd in sel.get_map() for fd in streams):
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = not exited
                break
            for key, _ in sel.select(left):
                fd = key.fd
                if fd == pidfd:
                    exited = True
                    sel.unregister(fd)
                    deadline = min(deadline, time.monotonic() + DRAIN_GRACE_S)
                    continue
                chunk = os.read(fd, 65536)
                if fd == info_r:
                    info += chunk
                    ns_pidfd = _ns_pidfd(info, owner)
                    if not chunk or ns_pidfd is not None:
                        sel.unregister(fd)
                    if ns_pidfd is not None and release is not None:
                        join_error = _release(release, p.pid, info)
                        release = None
                        if join_error:
                            break
                    continue
                if not chunk:
                    sel.unregister(fd)
                    continue
                buf, cap, name = streams[fd]
                buf += chunk
                if len(buf) > cap and limited is None:
                    limited = name
            if limited:
                break
        duration = time.monotonic() - t0
        if release is not None:  # never released: bwrap failed first, or the info never came
            os.close(release[0])
        killed = not exited
        if info_r is not None and ns_pidfd is None:  # bwrap wrote its info but we never got to read it
            os.set_blocking(info_r, False)
            try:
                info += os.read(info_r, 65536)
            except BlockingIOError:
                pass
            ns_pidfd = _ns_pidfd(info, owner)
        if killed or any(fd in sel.get_map() for fd in streams):
            if ns_pidfd is not None:
                try:
                    signal.pidfd_send_signal(ns_pidfd, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
        p.wait()
        # Readable once every process of the pid namespace is gone; then nothing of the run can be left.
        ns_gone = ns_pidfd is not None and bool(select.select([ns_pidfd], [], [], 5.0)[0])
    finally:
        sel.close()
        for fd in (pidfd, ns_pidfd, out_r, err_r):
            if fd is not None:
                os.close(fd)
    leftover = sum(reap_uid(u) for u in reap_uids) if not ns_gone else 0
    code = None if killed else p.returncode
    if code is not None and code < 0:  # killed by a signal (no bwrap in between): the shell's convention
        code = 128 - code
    sandbox_error = join_error
    if (info_r is not None and code == 1 and err.startswith(b"bwrap: ") and err.count(b"\n") <= 1) or \
            (code == 125 and err.startswith(INIT_NAME.encode() + b": ")):
        sandbox_error = err.split(b"\n", 1)[0].decode("utf-8", "replace")
    return RunResult(code, bytes(out[:stdout_cap]), bytes(err[:stderr_cap]), duration, timed_out, limited, leftover,
                     sandbox_error)
