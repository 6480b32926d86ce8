"""The seccomp filter every sandboxed process runs under (bubblewrap loads it with `--seccomp FD`).

It denies, with EPERM, the system calls by which one process reads, writes or steers another, or reaches kernel
surfaces a bash program never needs: ptrace, process_vm_readv/writev, pidfd_getfd, kcmp, perf_event_open, bpf,
userfaultfd, the keyring calls, io_uring, and new namespaces (unshare, setns, clone with CLONE_NEWUSER; clone3 is
answered ENOSYS so that libc falls back to clone, whose flags the filter can see). Different uids already keep
the program away from the judge; the filter holds where uids cannot be separated (not root), and a kernel without
Yama has nothing else that stops a same-uid ptrace.

The filter is compiled by libseccomp (through pyseccomp) for this machine's architecture; other architectures'
system calls are killed. Without pyseccomp or libseccomp2, `seccomp_filter()` returns None with the reason."""
from __future__ import annotations

import errno
import functools
import os

DENIED = ("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp", "perf_event_open", "bpf",
          "userfaultfd", "keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter",
          "io_uring_register", "unshare", "setns")
CLONE_NEWUSER = 0x10000000


@functools.lru_cache(maxsize=1)
def seccomp_filter() -> tuple[bytes | None, str | None]:
    """(compiled BPF program, None) or (None, why it cannot be built here)."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as e:  # pyseccomp raises OSError-like errors when libseccomp.so.2 is missing
        return None, f"pyseccomp/libseccomp2 unavailable ({type(e).__name__}: {e})"
    try:
        f = sc.SyscallFilter(sc.ALLOW)
        for name in DENIED:
            try:
                f.add_rule(sc.ERRNO(errno.EPERM), name)
            except (ValueError, RuntimeError, OSError):  # a call this architecture does not have
                pass
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
        f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            with os.fdopen(fd, "w+b", closefd=False) as fo:
                f.export_bpf(fo)
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0), None
        finally:
            os.close(fd)
    except Exception as e:  # noqa: BLE001 - any libseccomp failure means: no filter, and the report says why
        return None, f"libseccomp could not build the filter ({type(e).__name__}: {e})"


def describe() -> dict:
    prog, why = seccomp_filter()
    if prog is None:
        return {"loaded": False, "reason": why}
    return {"loaded": True, "denied": [*DENIED, "clone(CLONE_NEWUSER)", "clone3 (ENOSYS)"], "errno": "EPERM",
            "bpf_bytes": len(prog)}
