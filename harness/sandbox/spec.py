"""What a sandboxed run is given: the paths inside the sandbox, the environment, the resource limits, the
init (pid 1) that sets them, the wrapper that runs the program under test as the candidate, and a Job."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Mapping

from .supervise import INIT_NAME
from .userns import CANDIDATE_ID

WORKDIR = "/sandbox/work"    # inside the sandbox; also $HOME and $TMPDIR; shared by judge and candidate
JUDGE_DIR = "/sandbox/judge"  # the judge's private files (mode 0700): the tests, expected outputs
CAND_DIR = "/sandbox/cand"    # the program under test, run as the candidate by WORKDIR/candidate.sh
CANDIDATE = f"{CAND_DIR}/candidate.sh"
WRAPPER = f"{WORKDIR}/candidate.sh"
AS_CANDIDATE = f"{CAND_DIR}/as-candidate"  # for the tests: `$HARNESS_AS_CANDIDATE CMD...` runs CMD as the candidate
UID_BASE = int(os.environ.get("HARNESS_SANDBOX_UID_BASE", "2100000000"))  # unassigned range below 2**31
LOCK_DIR = os.path.join(tempfile.gettempdir(), "harness-sandbox-uids")     # one flock per slot's uids in use
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install "
                "bubblewrap`) or pass --unsafe-no-sandbox to run completions without isolation")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "TMPDIR": WORKDIR, "LANG": "C.UTF-8",
       "SHELL": "/bin/bash"}
ROOT_ENTRIES = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32")  # everything else stays hidden
# After the work files are in: the sandbox's own root and /dev tmpfs become read-only too, so only the
# size-capped /sandbox (work dir and /tmp) and /dev/shm can be written, and nothing grows without bound.
SEAL = ("--remount-ro", "/dev", "--remount-ro", "/")
# The capabilities of the judge's init and of the tests, inside the sandbox's user namespace only: switch to the
# candidate, signal and inspect its processes, read and write its files, and (init) mount /proc with hidepid.
# Nothing is gained by taking them from the tests: a candidate that could run code as the judge could simply
# make it exit 0, and none of them reaches outside the sandbox's own namespaces.
JUDGE_CAPS = ("setuid", "setgid", "kill", "sys_ptrace", "dac_override", "fowner", "chown", "sys_admin", "setpcap")
SETPRIV = "/usr/bin/setpriv"


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10                     # RLIMIT_CPU soft (SIGXCPU); hard = soft + 1 (SIGKILL)
    memory_bytes: int = 1 << 30         # RLIMIT_AS, per process
    nproc: int = 64                     # RLIMIT_NPROC, per uid in the sandbox (threads count)
    fsize_bytes: int = 16 << 20         # RLIMIT_FSIZE, largest file a program may write
    nofile: int = 256                   # RLIMIT_NOFILE
    workdir_bytes: int = 64 << 20       # tmpfs size of the work directory (+ /tmp), and of /dev/shm; under a
    #                                     cgroup plus sandbox_memory_bytes (Sandbox.tmpfs_bytes: a full disk is an OOM)
    stdout_bytes: int = 1 << 20         # kill the program once a stream passes this
    stderr_bytes: int = 1 << 20
    sandbox_memory_bytes: int = 1 << 30  # cgroup memory cap on the whole sandbox (tmpfs and memfds included)
    sandbox_pids: int = 192             # cgroup cap on all processes and threads of the sandbox


def init_argv(lim: Limits, nproc: bool = True, hide_proc: bool = False) -> list[str]:
    """pid 1 inside: set the rlimits, hide other users' processes, run the program as a child (so it keeps normal
    signal semantics: pid 1 ignores signals it has no handler for), reap orphans, exit with the program's status.
    `; exit` keeps bash from exec'ing the program in its own place. Exit 125 with a message if a limit cannot
    be set."""
    u = f" -u {lim.nproc}" if nproc else ""
    hide = (f"mount -o remount,hidepid=2 /proc || {{ echo '{INIT_NAME}: cannot hide /proc' >&2; exit 125; }}; "
            if hide_proc else "")
    # bwrap leaves the user namespace's fd (--userns) open in pid 1: close everything above stderr first
    close = 'for f in /proc/self/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-"; done; '
    script = (f"{close}ulimit -c 0 -n {lim.nofile}{u} -v {lim.memory_bytes // 1024} -f {lim.fsize_bytes // 1024} "
              f"&& ulimit -S -t {lim.cpu_s} && ulimit -H -t {lim.cpu_s + 1} "
              f"|| {{ echo '{INIT_NAME}: cannot set the rlimits' >&2; exit 125; }}; {hide}umask 002; \"$@\"; exit $?")
    return ["bash", "-c", script, INIT_NAME]


def as_candidate(separated: bool) -> list[str]:
    """The prefix that runs a command as the candidate: its own uid, no capabilities, the work group (0) so it
    can change the files the judge made for it."""
    if not separated:
        return []
    return [SETPRIV, f"--reuid={CANDIDATE_ID}", f"--regid={CANDIDATE_ID}", "--groups=0", "--inh-caps=-all",
            "--bounding-set=-all", "--"]


def as_candidate_script(separated: bool) -> bytes:
    """$HARNESS_AS_CANDIDATE for the tests: run a command as the candidate, e.g. to ask whether it may read a
    file before testing what the program does with it (the tests may read anything)."""
    return " ".join(["#!/bin/sh\nexec", *as_candidate(separated), '"$@"\n']).encode()


def wrapper_script(separated: bool, program: str = CANDIDATE) -> bytes:
    """WORKDIR/candidate.sh as the judge sees it: run the program under test as the candidate, same arguments,
    environment and file descriptors. Absolute paths only: a test may call it with any PATH."""
    shell = "/bin/sh" if os.access("/bin/sh", os.X_OK) else "/bin/bash"  # dash starts in a third of bash's time
    return " ".join([f"#!{shell}\nexec", *as_candidate(separated), "/bin/bash", program, '"$@"\n']).encode()


@dataclass
class Slot:
    owner: int                 # host uid of the sandbox's init and judge (uid 0 inside); runs bwrap
    candidate: int             # host uid of the candidate (CANDIDATE_ID inside)
    userns: int | None = None  # fd of the two-user namespace (root only)
    cgroup: object = None      # the slot's cgroups.Cgroup, reused run after run (when cgroups can be made)


@dataclass
class Job:
    """One sandboxed run: `argv` in WORKDIR with `files` there; `private` files in JUDGE_DIR (mode 0600, only
    the judge reads them) and `candidate` (the program under test) at CANDIDATE behind WRAPPER. Without
    `candidate`, `argv` itself is untrusted and runs as the candidate; with it, `argv` is the judge."""
    argv: list[str]
    files: Mapping[str, bytes | tuple[bytes, int]] = field(default_factory=dict)
    private: Mapping[str, bytes] = field(default_factory=dict)
    candidate: bytes | None = None
