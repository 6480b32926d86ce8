"""Two evaluations of the same problems, compared per task: is NEW better, worse, or not distinguishable
from BASE, with the interval of the difference in pass@k.

Pairing matters: the spread of pass@1 across tasks is mostly which tasks are hard, which two models share,
so an unpaired test wastes it. With one sample per task on both sides, McNemar's exact test on the tasks the
two disagree on; with more, a paired bootstrap over tasks of the per-task pass@k difference
(harness.intervals)."""
from __future__ import annotations

from ..errors import UsageError
from ..eval.passk import pass_at_k
from ..intervals import mcnemar_exact, paired_bootstrap
from .row import Row


class ProblemSetMismatch(UsageError):
    """Two eval reports over different problems: a paired comparison is undefined."""


def is_eval_pair(base: dict, new: dict) -> bool:
    return base.get("kind") == "eval" and new.get("kind") == "eval"


def per_task(report: dict) -> dict[str, tuple[int, int]]:
    """task_id -> (n, c) from an eval report's details."""
    tasks = ((report.get("details") or {}).get("tasks")) or []
    return {t["task_id"]: (int(t["n"]), int(t["passed"])) for t in tasks}


def _ids(ids, limit: int = 5) -> str:
    ids = sorted(ids)
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def check_same_problems(base: dict, new: dict, base_name: str = "BASE", new_name: str = "NEW") -> list[str]:
    """Raise ProblemSetMismatch naming the tasks only one side scored; return notes on softer differences."""
    a, b = per_task(base), per_task(new)
    if not a or not b:
        raise ProblemSetMismatch(f"{base_name if not a else new_name} has no per-task results (details.tasks); "
                                 "compare eval reports written by `harness eval`")
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    if only_a or only_b:
        parts = ([f"{len(only_a)} only in {base_name} ({_ids(only_a)})"] if only_a else []) + \
                ([f"{len(only_b)} only in {new_name} ({_ids(only_b)})"] if only_b else [])
        raise ProblemSetMismatch(f"{base_name} and {new_name} scored different problems: {'; '.join(parts)}; "
                                 "evaluate both on the same tasks (same --tasks and --limit) to compare them")
    notes = []
    ha = ((base.get("config") or {}).get("tasks") or {}).get("content_hash")
    hb = ((new.get("config") or {}).get("tasks") or {}).get("content_hash")
    if ha and hb and ha != hb:
        notes.append(f"same task ids, but the suites' content hashes differ ({ha[:19]} vs {hb[:19]}): tests changed")
    return notes


def paired_rows(base: dict, new: dict, ks, alpha: float, threshold: float) -> list[Row]:
    """One row per k: eval.pass@k compared per task."""
    a, b = per_task(base), per_task(new)
    ids = sorted(a)
    rows = []
    for k in ks:
        if any(a[i][0] < k or b[i][0] < k for i in ids):
            continue
        pa = [pass_at_k(*a[i], k) for i in ids]
        pb = [pass_at_k(*b[i], k) for i in ids]
        one = k == 1 and all(a[i][0] == 1 and b[i][0] == 1 for i in ids)
        t = mcnemar_exact([x == 1 for x in pa], [x == 1 for x in pb], alpha) if one else paired_bootstrap(pa, pb, alpha)
        row = Row(f"eval.pass@{k}", {}, "fraction", True, base=sum(pa) / len(ids), new=sum(pb) / len(ids),
                  method=t.method, n_base=len(ids), n_new=len(ids), ci=t.ci, p_value=t.p)
        row.change = t.diff  # an absolute difference in pass@k, not a ratio
        changed = sum(x != y for x, y in zip(pa, pb))
        if t.p < alpha and t.diff != 0:
            row.status = "improvement" if t.diff > 0 else "regression"
        elif changed == 0 or (-threshold <= t.ci[0] and t.ci[1] <= threshold):
            row.status = "unchanged"
        else:
            row.status = "inconclusive"
        detail = (f"{t.base_only} tasks passed only in BASE, {t.new_only} only in NEW" if one
                  else f"{changed} of {len(ids)} tasks differ")
        row.note = (f"paired over {len(ids)} tasks ({t.method}): difference {t.diff:+.3f} "
                    f"[{t.ci[0]:+.3f}, {t.ci[1]:+.3f}]; {detail}")
        if row.status == "inconclusive":
            row.note += "; not distinguishable: more tasks or samples per task would decide"
        rows.append(row)
    return rows
