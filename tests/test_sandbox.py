"""The sandbox: what a program sees, the limits it runs under, and how it ends. (Hostile programs: suites/redteam.)"""
import os
from pathlib import Path

import pytest

from harness.sandbox import sandbox as sb
from harness.errors import UsageError
from harness.sandbox.sandbox import Limits, Sandbox
from harness.sandbox.supervise import uid_processes

pytestmark = [pytest.mark.sandbox]


@pytest.fixture(scope="module")
def box():
    with Sandbox(Limits(wall_s=3, cpu_s=2, stdout_bytes=4096, stderr_bytes=4096), slots=2) as s:
        yield s


def sh(box, script, files=None, **kw):
    return box.run(["bash", "-c", script], files or {}, **kw)


def test_runs_in_a_fresh_work_directory_with_the_files(box):
    r = sh(box, 'pwd; echo "$HOME $TMPDIR"; cat data/in.txt; ./run.sh; stat -c %a run.sh data/in.txt; ls -A',
           {"run.sh": (b"#!/bin/bash\necho ran\n", 0o755), "data/in.txt": b"hello\n"})
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[:4] == [sb.WORKDIR, f"{sb.WORKDIR} {sb.WORKDIR}", "hello", "ran"]
    assert lines[4:6] == ["775", "664"]  # the group (0: judge and candidate) gets the owner's bits
    assert sorted(lines[6:]) == ["data", "run.sh"]
    again = sh(box, "ls -A")  # nothing carries over between runs
    assert again.stdout == b""


def test_dev_stdout_and_stderr_work(box):
    # Common in scripts; it fails with EACCES unless the program's uid owns the pipes.
    r = sh(box, "echo out > /dev/stdout; echo err > /dev/stderr; echo fd >/dev/fd/2; cat /dev/stdin")
    assert (r.exit_code, r.stdout, r.stderr) == (0, b"out\n", b"err\nfd\n")


def test_only_the_work_dir_tmp_and_shm_are_writable(box):
    r = sh(box, "for p in /x /dev/x /etc/x /usr/x /proc/x ./x /tmp/x /dev/shm/x; do "
                "(: > $p) 2>/dev/null && echo $p; done; df -k --output=size /sandbox | tail -1")
    *writable, size_kib = r.stdout.decode().split()
    assert writable == ["./x", "/tmp/x", "/dev/shm/x"]
    assert int(size_kib) * 1024 == box.tmpfs_bytes >= box.limits.workdir_bytes
    if box.cgroups.version is not None:  # a full work dir is an OOM kill, never a failed write of the tests
        assert box.tmpfs_bytes > box.limits.sandbox_memory_bytes


def test_environment_is_clean(box, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_SECRET", "s3cr3t-value")
    r = sh(box, "env")
    env = dict(line.split("=", 1) for line in r.stdout.decode().splitlines() if "=" in line)
    assert "HARNESS_TEST_SECRET" not in env and b"s3cr3t" not in r.stdout
    assert env["HOME"] == sb.WORKDIR and "LD_PRELOAD" not in env


def test_host_paths_are_hidden_and_root_is_read_only(box):
    here = os.path.dirname(os.path.abspath(__file__))
    r = sh(box, f'for p in /root /home /work /var /opt "{here}"; do [ -e "$p" ] && echo "visible $p"; done; '
                 'touch /usr/x 2>/dev/null && echo "wrote /usr"; touch /etc/x 2>/dev/null && echo "wrote /etc"; '
                 'touch /tmp/x && echo "tmp ok"; grep -E "^Cap(Eff|Prm|Bnd)" /proc/self/status; '
                 'head -1 /proc/self/uid_map')
    out = r.stdout.decode()
    assert "visible" not in out and "wrote" not in out
    assert "tmp ok" in out
    caps = dict(line.split(":") for line in out.splitlines() if line.startswith("Cap"))
    assert all(int(v, 16) == 0 for v in caps.values()), caps  # no capability, not even across exec
    inside, host, _ = out.splitlines()[-1].split()
    if os.geteuid() == 0:  # whatever the uid inside, it is an unprivileged host uid (not root: the caller's)
        assert int(host) != 0


def test_no_network(box):
    r = sh(box, "ls /sys/class/net 2>/dev/null; exec 3<>/dev/tcp/127.0.0.1/1 || echo refused; "
                "getent hosts localhost.localdomain >/dev/null; echo > /dev/tcp/192.0.2.1/80 || echo unreachable")
    assert b"refused" in r.stdout and b"unreachable" in r.stdout


def test_rlimits_apply_inside(box):
    r = sh(box, "ulimit -u; ulimit -f; ulimit -n; ulimit -t; ulimit -v")
    nproc, fsize, nofile, cpu, vmem = r.stdout.decode().split()
    lim = box.limits
    assert int(nproc) == lim.nproc and int(nofile) == lim.nofile and int(cpu) == lim.cpu_s
    assert int(fsize) * 1024 == lim.fsize_bytes and int(vmem) * 1024 == lim.memory_bytes


def test_timeout_kills_the_whole_tree(box):
    r = sh(box, "sleep 100 & setsid sleep 100 & sleep 100", wall_s=0.5)
    assert r.timed_out and r.exit_code is None
    assert 0.5 <= r.duration_s < 2.0
    assert r.leftover == 0
    if os.geteuid() == 0:
        assert not any(uid_processes(u) for u in box.uids)


def test_output_cap(box):
    r = sh(box, "yes")
    assert r.output_limited == "stdout" and r.exit_code is None and len(r.stdout) == box.limits.stdout_bytes
    r = sh(box, "yes >&2")
    assert r.output_limited == "stderr"


def test_exit_codes_and_cpu_limit(box):
    assert sh(box, "exit 7").exit_code == 7
    assert sh(box, "kill -KILL $$").exit_code == 137
    r = sh(box, "while :; do :; done", wall_s=10)
    assert r.exit_code == 128 + 24  # SIGXCPU at cpu_s, before the wall clock


def test_background_output_after_exit_is_drained(box):
    r = sh(box, "(sleep 0.2; echo late) & echo early")
    assert r.stdout.startswith(b"early")  # the namespace dies with pid 1, so "late" never comes
    assert r.duration_s < 1.5


def test_bad_file_paths_are_refused(box):
    for bad in ("/etc/x", "../x", "a/../../x"):
        with pytest.raises(ValueError):
            box.run(["true"], {bad: b""})


def test_isolation_record(box):
    iso = box.isolation
    assert iso["kind"] == "bwrap" and iso["bwrap_version"]
    for flag in ("--die-with-parent", "--new-session", "--clearenv"):
        assert flag in iso["flags"]
    assert "--unshare-all" in iso["flags"] or {"--unshare-pid", "--unshare-net"} <= set(iso["flags"])
    assert iso["flags"][iso["flags"].index("--cap-drop") + 1] == "ALL"
    assert iso["limits"]["nproc"] == box.limits.nproc
    assert iso["seccomp"]["loaded"] and "ptrace" in iso["seccomp"]["denied"]
    if os.geteuid() == 0:  # two users in our own user namespace, which also blocks nested ones (by seccomp)
        assert iso["judge"]["separated"] and "--userns" not in iso["flags"]
        assert iso["cgroup"]["version"] in ("v1", "v2"), iso["cgroup"]
    else:
        assert not iso["judge"]["separated"] and "not root" in iso["judge"]["reason"]
        assert "--disable-userns" in iso["flags"]


def test_parallel_slots_use_distinct_uids(box):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as ex:
        outs = list(ex.map(lambda _: sh(box, "sleep 0.3; cat /proc/self/uid_map").stdout.strip(), range(2)))
    if os.geteuid() == 0:
        assert len(set(outs)) == 2


def test_two_sandboxes_never_share_a_uid():
    if os.geteuid() != 0:
        pytest.skip("uid switching needs root")
    with Sandbox(Limits(wall_s=2), slots=2) as a, Sandbox(Limits(wall_s=2), slots=2) as b:
        assert not set(a.uids) & set(b.uids)


def test_missing_bwrap_names_the_install_step(monkeypatch):
    real = sb._which
    monkeypatch.setattr(sb, "_which", lambda name: None if name == "bwrap" else real(name))
    with pytest.raises(UsageError, match="apt-get install bubblewrap"):
        Sandbox()
    unsafe = Sandbox(Limits(wall_s=2), unsafe=True)  # the explicit flag still runs, and says so
    assert unsafe.isolation["kind"] == "none" and "UNSAFE" in unsafe.isolation["warning"]
    r = unsafe.run(["bash", "-c", "cat in; pwd; ulimit -u"], {"in": b"x\n"})
    out = r.stdout.decode().split()
    assert r.exit_code == 0 and out[0] == "x" and "harness-unsafe-" in out[1]
    assert not os.path.exists(out[1])  # the temporary work directory is gone
    r = unsafe.run(["bash", "-c", "sleep 50"], {}, wall_s=0.3)
    assert r.timed_out


def test_unsafe_mode_still_kills_escaped_processes():
    if os.geteuid() != 0:
        pytest.skip("reaping by uid needs root")
    with Sandbox(Limits(wall_s=3), unsafe=True) as box:
        r = box.run(["bash", "-c", "setsid sleep 100 & exit 0"], {})
        assert r.exit_code == 0 and r.leftover >= 1  # no pid namespace: found and killed by uid
        assert not uid_processes(box.uids[0])


# -- the judge, seccomp and the cgroup -------------------------------------------------------------------------
def _needs_root():
    if os.geteuid() != 0:
        pytest.skip("a separate judge and a cgroup per run need root")


def test_process_introspection_and_new_namespaces_are_denied(box):
    r = sh(box, "python3 -c 'import ctypes, os\n"
                "libc = ctypes.CDLL(None, use_errno=True)\n"
                "print(libc.ptrace(0, 0, None, None), ctypes.get_errno())\n"          # PTRACE_TRACEME
                "print(libc.syscall(310, 1, None, 0, None, 0, 0), ctypes.get_errno())'; "  # process_vm_readv
                "unshare -U true 2>/dev/null || echo no-userns; strace -f true 2>/dev/null || echo no-strace")
    lines = r.stdout.decode().split("\n")
    assert lines[0] == "-1 1" and lines[1] == "-1 1", r  # EPERM from the seccomp filter
    assert "no-userns" in lines and "no-strace" in lines


def test_candidate_cannot_reach_the_judge(box):
    """The tests (the judge) start a process and keep a secret; the candidate looks for both."""
    _needs_root()
    test = ("sleep 30 & echo $! > judge.pid\n"
            "out=$(./candidate.sh)\n"
            "kill $!\n"
            'printf "%s\\n" "$out"\n'
            '[ "$(id -u)" = 0 ] && echo judge-is-root-inside\n')
    cand = (b"pid=$(cat judge.pid)\n"
            b"kill -0 $pid 2>/dev/null && echo can-signal\n"
            b"[ -e /proc/$pid ] && echo can-see\n"
            b"[ -e /proc/1 ] && echo can-see-init\n"
            b"cat /sandbox/judge/test.sh 2>/dev/null && echo can-read-tests\n"
            b"ls /sandbox/judge 2>/dev/null && echo can-list\n"
            b": > candidate.sh 2>/dev/null && echo can-replace-entry\n"
            b"ls /proc/self/fd | grep -qvx '[0-3]' && echo extra-fds\n"  # 3: ls's own directory fd
            b"grep -q '^CapBnd:[[:space:]]*0*$' /proc/self/status || echo has-capabilities\n"
            b"echo uid=$(id -u)\n")
    r = box.execute(sb.Job(["bash", f"{sb.JUDGE_DIR}/test.sh"], {}, {"test.sh": test.encode()}, cand))
    out = r.stdout.decode()
    assert r.exit_code == 0, r
    assert f"uid={sb.CANDIDATE_ID}" in out and "judge-is-root-inside" in out
    for leak in ("can-signal", "can-see", "can-read-tests", "can-list", "can-replace-entry", "extra-fds",
                 "has-capabilities"):
        assert leak not in out, out


def test_judge_files_are_read_only_even_to_the_judge(box):
    _needs_root()
    r = box.execute(sb.Job(["bash", f"{sb.JUDGE_DIR}/test.sh"], {}, {"test.sh": b"echo x >> $0 || echo refused\n"},
                           b"exit 0\n"))
    assert b"refused" in r.stdout, r


def test_memory_cap_covers_memfds_across_the_sandbox(box):
    """100 memfds of 15 MiB: each under RLIMIT_FSIZE, none in the address space, 1.5 GiB in all."""
    _needs_root()
    r = sh(box, "python3 -c 'import os\nfds = [os.memfd_create(str(i)) for i in range(100)]\n"
                "[os.write(f, b\"x\" * (15 << 20)) for f in fds]\nprint(\"held\")'", wall_s=10)
    assert r.oom_kills >= 1 and b"held" not in r.stdout, r
    ok = sh(box, "python3 -c 'b = b\"x\" * (100 << 20)'", wall_s=10)
    assert ok.exit_code == 0 and ok.oom_kills == 0
    assert ok.memory_peak_bytes is None or ok.memory_peak_bytes > 100 << 20


def test_cgroup_v2_layout_on_a_fake_hierarchy(tmp_path, monkeypatch):
    """The v2 path on a machine that has v1 (or the reverse): plain files stand in for cgroupfs."""
    from harness.sandbox import cgroups

    _needs_root()
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    monkeypatch.setattr(cgroups, "_mounts", lambda: [(str(tmp_path), "cgroup2", set())])
    monkeypatch.setattr(cgroups, "_own_path", lambda c: "/")
    pool = cgroups.CgroupPool(1 << 30, 100)
    assert pool.version == "v2" and pool.parents[0].startswith(str(tmp_path))
    cg = pool.create()
    assert (Path(cg.dirs[0]) / "memory.max").read_text() == str(1 << 30)
    assert (Path(cg.dirs[0]) / "pids.max").read_text() == "100"
    (Path(cg.dirs[0]) / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    assert cg.stats()["oom_kills"] == 2
    assert cg.join_argv(["true"])[-1] == "true" and cg.procs[0].endswith("cgroup.procs")


def test_no_cgroup_is_recorded_with_the_reason(monkeypatch):
    from harness.sandbox import cgroups

    monkeypatch.setattr(cgroups.os, "geteuid", lambda: 1000)
    pool = cgroups.CgroupPool(1 << 30, 100)
    assert pool.version is None and pool.describe() == {"version": None, "reason": pool.reason}
    assert "not root" in pool.reason


def test_tests_can_ask_what_the_candidate_may_access(box):
    """$HARNESS_AS_CANDIDATE runs a command as the program's user: a chmod 000 file the tests may still read."""
    _needs_root()
    test = (b"echo data > locked; chmod 000 locked\n"
            b"$HARNESS_AS_CANDIDATE cat locked 2>/dev/null || echo program-refused\n"
            b"cat locked >/dev/null && echo tests-read\n"
            b"./candidate.sh\n")
    r = box.execute(sb.Job(["bash", f"{sb.JUDGE_DIR}/test.sh"], {}, {"test.sh": test},
                           b"cat locked 2>/dev/null || echo candidate-refused\n"))
    assert r.stdout.decode().split() == ["program-refused", "tests-read", "candidate-refused"], r
