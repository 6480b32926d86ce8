"""Red team: hostile programs run through the real evaluation pipeline, in parallel, next to benign controls.

Each must be contained: host canaries unchanged, nothing on the host network reached, no process left behind,
the evaluation goes on (the controls still pass) and the right status is recorded. Where it can, a hostile
program exits 0 only if its attack worked, so "passed" would mean an escape.

Placeholders filled in below: {CANARY} (a world-writable host directory with a fake ssh key), {PORT} (a TCP
listener on the host's loopback), {MARK} (in the command line of a host process), {HOST_TMP} (a host /tmp
path that must not appear), {PROJECT} (this repository)."""
import os
import subprocess
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.eval.evaluate import evaluate
from harness.eval.execute import Executor
from harness.report import load_report, write_report
from harness.sandbox.sandbox import Limits, Sandbox
from harness.sandbox.supervise import uid_processes
from harness.eval.tasks import Sample, SampleSet, load_suite

pytestmark = [pytest.mark.sandbox, pytest.mark.isolation]
WORKERS = 4


@dataclass(frozen=True)
class Hostile:
    script: str
    expect: frozenset          # statuses that mean "contained, and recorded correctly"


def H(script: str, *expect: str) -> Hostile:
    return Hostile(script, frozenset(expect))


PROGRAMS = {
    # resource exhaustion
    "fork_bomb": H(":(){{ :|:& }};:; sleep 60\n", "timeout"),
    "process_flood": H("for i in $(seq 300); do sleep 100 & done; wait\n", "timeout", "failed"),
    "memory_bomb_python": H('python3 -c "x = bytearray(8 << 30)"\n', "oom"),
    "memory_bomb_perl": H("perl -e '$x = \"x\" x (4 << 30); print length($x)'\n", "oom"),
    # the work dir's tmpfs is larger than the cgroup's memory cap, so filling it ends in an OOM kill, not ENOSPC
    # (15 MiB files: each under RLIMIT_FSIZE, and enough of them within the 3 s limit)
    "disk_fill": H('i=0; while head -c 15M /dev/zero > "fill$i"; do i=$((i+1)); done; echo "$((15 * i)) MiB"; exit 1\n',
                   "oom"),
    "huge_file": H("head -c 200M /dev/zero > big || exit 1; exit 0\n", "failed"),
    "unbounded_stdout": H("yes\n", "output_limit"),
    "unbounded_stderr": H("yes >&2\n", "output_limit"),
    "sleep_forever": H("sleep infinity\n", "timeout"),
    "busy_children": H("for i in 1 2 3 4; do (while :; do :; done) & done; wait\n", "timeout", "cpu_limit"),
    "ignore_sigterm": H("trap '' TERM INT HUP; while :; do sleep 1; done\n", "timeout"),
    "huge_argv": H("/bin/echo \"$(head -c 3000000 /dev/zero | tr '\\0' a)\" >/dev/null && exit 0; exit 1\n",
                   "failed"),
    "binary_output": H("head -c 3000 /dev/urandom; printf '\\0\\377\\376'; exit 0\n", "passed"),
    "stdin_block": H("cat; read -r line; exit 0\n", "passed"),
    # escapes from the process tree
    "setsid_escape": H("setsid sleep 1000 & exit 0\n", "passed"),
    "nohup_disown": H("nohup sleep 1000 >/dev/null 2>&1 & disown; exit 0\n", "passed"),
    "double_fork_daemon": H("( ( trap '' HUP TERM; while :; do echo tick >> {CANARY}/daemon.log; sleep 0.1; done )"
                            " & ) ; exit 0\n", "passed"),
    "kill_everything": H("kill -9 -1; exit 0\n", "passed", "failed"),
    # the filesystem
    "rm_home": H('rm -rf ~ "$HOME"/* 2>/dev/null; exit 0\n', "passed"),
    "rm_root": H("rm -rf --no-preserve-root / 2>/dev/null; exit 0\n", "passed", "timeout"),
    "rm_canary": H("rm -rf {CANARY} 2>/dev/null; [ -e {CANARY}/canary.txt ] && exit 1; exit 1\n", "failed"),
    "write_outside": H("for p in /etc/pwned /usr/pwned /pwned /root/pwned {CANARY}/pwned {CANARY}/canary.txt "
                       "{PROJECT}/pwned; do (echo x >> \"$p\") 2>/dev/null && exit 0; done; exit 1\n", "failed"),
    "write_host_tmp": H("echo x > {HOST_TMP} && exit 0; exit 1\n", "passed"),
    "chmod_workdir": H("chmod 000 . ~; chmod -R 000 /sandbox 2>/dev/null; exit 0\n", "passed"),
    # secrets
    "read_ssh_keys": H("cat ~/.ssh/id_rsa /root/.ssh/id_* {CANARY}/.ssh/id_rsa 2>/dev/null | grep -q REDTEAM "
                       "&& exit 0; exit 1\n", "failed"),
    "read_environment": H("env | grep -q REDTEAM && exit 0; cat /proc/*/environ 2>/dev/null | grep -qa REDTEAM "
                          "&& exit 0; exit 1\n", "failed"),
    "read_project": H("cat {PROJECT}/pyproject.toml 2>/dev/null && exit 0; exit 1\n", "failed"),
    # the pattern is {MARK_RE} ("[m]ark"), not {MARK}: grep's own command line is in /proc too, and a literal
    # pattern would find itself whenever grep starts before cat reads /proc (a flaky false "escape")
    "snoop_host_processes": H("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q '{MARK_RE}' && exit 0; "
                              "[ \"$(ls -d /proc/[0-9]* | wc -l)\" -gt 12 ] && exit 0; exit 1\n", "failed"),
    # network
    "net_host_loopback": H("echo hi > /dev/tcp/127.0.0.1/{PORT} && exit 0; exit 1\n", "failed"),
    "net_external": H("exec 3<>/dev/tcp/1.1.1.1/53 && exit 0; exit 1\n", "failed"),
    "net_dns": H("getent hosts example.com && exit 0; exit 1\n", "failed"),
    # privilege
    "privilege_tricks": H("echo b > /proc/sysrq-trigger 2>/dev/null && exit 0; mount -t tmpfs none /mnt 2>/dev/null "
                          "&& exit 0; unshare -Ur true 2>/dev/null && exit 0; exit 1\n", "failed"),
    "setuid_tools": H("sudo -n true 2>/dev/null && exit 0; su -c true root </dev/null 2>/dev/null && exit 0; "
                      "exit 1\n", "failed"),
}


@pytest.fixture(scope="module")
def redteam(tmp_path_factory, canary, listener, marker, secret, snapshot_of):
    """Every hostile program, each followed by a benign control, through one parallel evaluation."""
    root = tmp_path_factory.mktemp("redteam-suite")
    (root / "suite.json").write_text('{"name": "redteam", "version": "1"}')
    d = root / "redteam" / "any"
    d.mkdir(parents=True)
    (d / "prompt.sh").write_text("#!/bin/bash\n# Any program. The test passes when it exits 0.\n")
    (d / "solution.sh").write_text("exit 0\n")
    (d / "test.sh").write_text("./candidate.sh\n")
    host_tmp = Path("/tmp") / f"redteam-pwned-{uuid.uuid4().hex[:8]}"
    ctx = {"CANARY": canary, "PORT": listener.port, "MARK": marker.mark, "HOST_TMP": host_tmp,
           "MARK_RE": f"[{marker.mark[0]}]{marker.mark[1:]}",
           "PROJECT": Path(__file__).resolve().parents[2]}
    names, samples = [], []
    for name, prog in PROGRAMS.items():
        for n, text in ((name, prog.script.format(**ctx)), (f"control after {name}", "echo ok\n")):
            names.append(n)
            samples.append(Sample("redteam/any", text, len(samples) + 1, len(samples)))
    before = snapshot_of(canary)
    os.environ["REDTEAM_SECRET"] = secret
    try:
        with Sandbox(Limits(wall_s=3, cpu_s=3), slots=WORKERS) as box:
            report = evaluate(load_suite(root), SampleSet("redteam", samples, Counter(), []), Executor(box), [1],
                              workers=WORKERS, check=False, quality=False, progress=False)
            uids = list(box.uids)
    finally:
        del os.environ["REDTEAM_SECRET"]
    out = tmp_path_factory.mktemp("redteam-report") / "report.json"
    write_report(report, out)
    return {"results": dict(zip(names, report["details"]["tasks"][0]["samples"])), "report_path": out,
            "before": before, "after": snapshot_of(canary), "uids": uids, "host_tmp": host_tmp}


def test_there_are_at_least_25_hostile_programs():
    assert len(PROGRAMS) >= 25


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_contained_with_the_right_status(redteam, name):
    r = redteam["results"][name]
    assert r["status"] in PROGRAMS[name].expect, r
    assert r["leftover"] == 0, r


def test_evaluation_goes_on_next_to_hostile_programs(redteam):
    controls = {n: r for n, r in redteam["results"].items() if n.startswith("control after")}
    assert len(controls) == len(PROGRAMS)
    assert all(r["status"] == "passed" and r["stdout"] == "ok\n" for r in controls.values()), controls


def test_host_canaries_unchanged(redteam, canary):
    assert redteam["after"] == redteam["before"]
    assert not redteam["host_tmp"].exists()
    project = Path(__file__).resolve().parents[2]
    assert not (project / "pwned").exists() and not Path("/pwned").exists() and not Path("/etc/pwned").exists()


def test_no_secret_reaches_any_output(redteam, secret):
    for name, r in redteam["results"].items():
        assert secret not in r.get("stdout", "") + r.get("stderr", ""), name


def test_no_network_reached_the_host(redteam, listener):
    assert listener.connections == 0


def test_no_process_left_behind(redteam, marker):
    assert all(not uid_processes(u) for u in redteam["uids"])  # the module needs root (isolation)
    assert marker.poll() is None  # kill -9 -1 in a sandbox did not reach the host


def test_report_with_binary_output_is_valid(redteam):
    r = load_report(redteam["report_path"])
    assert r["config"]["isolation"]["kind"] == "bwrap"


def test_kill_minus_one_cannot_reach_a_host_process_of_the_same_uid():
    """Without the pid namespace, `kill -9 -1` as uid U kills every process of U on the host."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a host process as the sandbox's uid")
    with Sandbox(Limits(wall_s=3), slots=1, reap=False) as box:
        uid = box.uids[0]
        victim = subprocess.Popen(["sleep", "30"], user=uid, group=uid, extra_groups=[])
        try:
            r = box.run(["bash", "-c", "kill -9 -1; sleep 0.3; exit 0"], {})
            assert r.exit_code == 0
            assert victim.poll() is None
        finally:
            victim.kill()
            victim.wait()
