"""`harness tasks`: the task suite for people who generate elsewhere.

    harness tasks export --format jsonl [--tasks PATH] [--out FILE]   # human-eval style {task_id, prompt} lines
"""
from __future__ import annotations

import json


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = sub.add_parser("export", help="print the suite's prompts as {task_id, prompt} JSONL lines")
    e.add_argument("--format", default="jsonl", choices=("jsonl",), help="jsonl (human-eval's problem lines)")
    e.add_argument("--tasks", metavar="PATH", default=None,
                   help="task suite directory (default fixtures/tasks) or a MultiPL-E problem file")
    e.add_argument("--out", metavar="FILE", help="write here instead of stdout")


def run(args) -> int:
    from ..eval.tasks import load_suite
    from ..outputs import emit_lines

    suite = load_suite(args.tasks)
    lines = []
    for t in sorted(suite.tasks, key=lambda t: t.task_id):
        rec = {"task_id": t.task_id, "prompt": t.prompt}
        if t.stop_tokens:
            rec["stop_tokens"] = list(t.stop_tokens)
        lines.append(json.dumps(rec))
    emit_lines(lines, args.out, "tasks", "prompts")
    return 0
