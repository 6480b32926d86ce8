"""Evaluation pages of the results site: eval.html lists every eval report; eval/<report>.html shows one:
headline metrics, status counts, per-category pass@k (table and bars), and a drill-down to every task and
sample (status, exit code, time, stdout/stderr heads, syntax and shellcheck verdicts). Task output is
untrusted text: it is escaped and cut to a head, never interpreted."""
from __future__ import annotations

import re

from ..eval.passk import pass_at_k, suite_pass_at_k
from ..report import scored
from .html import (Entry, badge, caption, compact, display_unit, env_block, esc, fmt, footer, num, page, slug,
                        table, td)
from .svg import PALETTE, Bar, BarGroup, bar_chart, percent

HEAD_CHARS = 400  # of stdout / stderr shown per sample
HEADLINE = ("eval.pass@1", "eval.pass@10", "eval.pass@100", "eval.syntax.bash_n", "eval.syntax.bashlex",
            "eval.shellcheck_clean", "eval.bleu", "eval.codebleu")
_CATEGORY = re.compile(r"^eval\.pass@(\d+)\.(.+)$")


def _metrics(e: Entry) -> dict[str, dict]:
    return {m["name"]: m for m in e.report.get("metrics", []) if "name" in m}


def categories(e: Entry) -> tuple[list[int], dict[str, dict[int, tuple[float | None, dict | None]]]]:
    """(ks, {category: {k: (value, metric)}}): the report's eval.pass@K.<category> metrics, and for the ks it
    asked for but did not break down by category, pass@k computed from the per-task counts in its details
    with the same estimator (metric None marks a computed value)."""
    out: dict[str, dict[int, tuple[float | None, dict | None]]] = {}
    ks: set[int] = {k for k in (e.report.get("config") or {}).get("k") or [] if isinstance(k, int) and k >= 1}
    for m in e.report.get("metrics", []):
        g = _CATEGORY.match(m.get("name", ""))
        cat = (m.get("labels") or {}).get("category")
        if g and cat is not None:
            ks.add(int(g.group(1)))
            out.setdefault(str(cat), {})[int(g.group(1))] = (m.get("value"), m)
    d = e.report.get("details") if isinstance(e.report.get("details"), dict) else {}
    counts: dict[str, list[tuple[int, int]]] = {}
    for t in d.get("tasks") or []:
        if isinstance(t, dict) and isinstance(t.get("n"), int) and isinstance(t.get("passed"), int):
            counts.setdefault(str(t.get("category") or "uncategorised"), []).append((t["n"], t["passed"]))
    for cat, cc in counts.items():
        for k in ks:
            if k not in out.get(cat, {}):
                out.setdefault(cat, {})[k] = (suite_pass_at_k(cc, k), None)
    return sorted(ks), dict(sorted(out.items()))


def _setup(c: dict, r: dict) -> str:
    """One sentence on what was scored how, from whichever config fields the report has."""
    t = c.get("tasks")
    if isinstance(t, dict):
        extra = ", ".join(x for x in (f"{t['tasks']} tasks" if t.get("tasks") else "",
                                      f"{t['format']} format" if t.get("format") else "",
                                      str(t.get("content_hash") or "")) if x)
        tasks = f"{t.get('name', '?')} {t.get('version', '')}".strip() + (f" ({extra})" if extra else "")
    else:
        tasks = str(t or "?")
    from ..models import model_label

    by = model_label(c)
    if not scored(r):
        from ..models.speed import generation_label

        how = generation_label(c)
        return (f"Samples {c.get('samples') or '?'}{f' from {by}' if by else ''} generated for {tasks}"
                f"{f' ({how})' if how else ''}; not scored (--generate-only): no program was run, so there is no "
                f"pass@k; status {r.get('status')}.")
    out = [f"Samples {c.get('samples') or c.get('checkpoint') or '?'}{f' from {by}' if by else ''} scored on {tasks}"]
    if c.get("k"):
        out.append(f"k = {', '.join(map(str, c['k'])) if isinstance(c['k'], list) else c['k']}")
    if _per_task(c):
        out.append(f"samples per task {_per_task(c)}")
    iso = c.get("isolation") if isinstance(c.get("isolation"), dict) else {}
    if iso:
        lim = iso.get("limits") or {}
        out.append(f"sandbox {iso.get('kind', '?')} (wall {lim.get('wall_s', '?')} s, memory "
                   f"{fmt(lim.get('memory_bytes'), 'bytes')})")
    out.append(f"status {r.get('status')}")
    return "; ".join(out) + "."


def _per_task(c: dict) -> str:
    n = c.get("n_per_task", c.get("n"))
    if isinstance(n, dict) and "min" in n:
        return str(n["min"]) if n["min"] == n.get("max") else f"{n['min']}–{n.get('max')}"
    return "" if n is None else compact(n)


def _head(text) -> str:
    s = "" if text is None else str(text)
    if len(s) > HEAD_CHARS:
        s = s[:HEAD_CHARS] + f"\n… ({len(s) - HEAD_CHARS} more characters)"
    return f"<pre>{esc(s)}</pre>" if s else ""


def _sample_row(s: dict) -> str:
    q = s.get("quality") or {}
    sc = q.get("shellcheck") or {}
    cb = q.get("codebleu")
    cbv = cb.get("codebleu") if isinstance(cb, dict) else cb
    sc_text = ("clean" if sc.get("clean") else " ".join(map(str, sc.get("codes") or [])) or "findings") \
        if sc.get("checked") else (sc.get("failure") or "")
    st = str(s.get("status", "?"))
    return (td(s.get("index"), "num") + td(badge(st, f"s-{slug(st)}"), raw=True) + td(s.get("exit_code"), "num")
            + num(s.get("duration_s"), "s") + td(_head(s.get("stdout")), raw=True)
            + td(_head(s.get("stderr")), raw=True) + td(q.get("bash_n", "")) + td(q.get("bashlex", ""))
            + td(sc_text) + num(cbv, "score"))


def _task_block(t: dict, ks: list[int]) -> str:
    samples = t.get("samples") or []
    n, c = t.get("n", len(samples)), t.get("passed", 0)
    counts: dict[str, int] = {}
    for s in samples:
        counts[str(s.get("status", "?"))] = counts.get(str(s.get("status", "?")), 0) + 1
    pk = []
    for k in ks:
        if isinstance(n, int) and isinstance(c, int) and 0 <= c <= n and 1 <= k <= n:
            pk.append(f"pass@{k} {percent(pass_at_k(n, c, k))}")
    tid = str(t.get("task_id", "?"))
    summary = (f"<code>{esc(tid)}</code> — {esc(c)}/{esc(n)} passed"
               f"{' — ' + esc(', '.join(pk)) if pk else ''} "
               + " ".join(badge(f"{k} ×{v}", f"s-{slug(k)}") for k, v in sorted(counts.items()))
               + ("" if t.get("sound", True) else " " + badge("unsound task", "v-impossible")))
    rows = [_sample_row(s) for s in samples]
    return (f'<details id="task-{esc(slug(tid))}"><summary>{summary}</summary>'
            + table(["#sample", "status", "#exit", "#time", "stdout (head)", "stderr (head)", "bash -n", "bashlex",
                     "shellcheck", "#CodeBLEU"], rows) + "</details>")


def eval_page(e: Entry, entries: list[Entry]) -> str:
    r = e.report
    c = r.get("config") or {}
    ms = _metrics(e)
    d = r.get("details") if isinstance(r.get("details"), dict) else {}
    parts = [f'<p class="lead">{esc(_setup(c, r))}</p>', env_block(e, "../")]
    if d.get("not_scored"):
        parts.append(f'<p class="muted">{esc(d["not_scored"])}</p>')
    cards = []
    for name in HEADLINE:
        m = ms.get(name)
        if m is not None:
            cards.append(f'<div class="card"><div class="label">{esc(name)}</div><div class="value" '
                         f'data-metric="{esc(name)}" data-report="{esc(e.name)}" data-value="{esc(repr(m["value"]))}">'
                         f'{esc(fmt(m["value"], display_unit(name, m.get("unit", ""))))}</div></div>')
    parts.append('<div class="cards">' + "".join(cards) + "</div>")
    status = [(n.split(".", 2)[2], m) for n, m in ms.items() if n.startswith("eval.status.")]
    if status:
        parts.append('<p class="counts">Sample outcomes: ' + " ".join(
            badge(f"{k} {fmt(m.get('value'))}", f"s-{slug(k)}") for k, m in status if m.get("value")) + "</p>")
    ks, cats = categories(e)
    if cats:
        rows, computed = [], False
        for cat, by_k in cats.items():
            n_tasks = next(((m.get("labels") or {}).get("tasks") for _, m in by_k.values() if m), "")
            line = td(f'<a href="#cat-{esc(slug(cat))}">{esc(cat)}</a>', raw=True) + td(n_tasks, "num")
            for k in ks:
                v, m = by_k.get(k, (None, None))
                if m is not None:
                    line += num(v, "fraction", metric=m["name"], report=e.name)
                else:
                    computed = computed or v is not None
                    line += num(v, "fraction", cls="num computed", extra="†" if v is not None else "")
            rows.append(line)
        parts.append("<h2>Per category</h2>" + table(["category", "#tasks", *[f"#pass@{k}" for k in ks]], rows))
        if computed:
            parts.append('<p class="muted">† not broken down by category in the report: computed here from the '
                         "per-task sample and pass counts in its details with the same unbiased estimator.</p>")
        colors = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(ks)}
        groups = [BarGroup(cat, [Bar(by_k.get(k, (None, None))[0], colors[k],
                                     f"{cat}: pass@{k} = {by_k.get(k, (None, None))[0]!r}") for k in ks])
                  for cat, by_k in cats.items()]
        parts.append("<figure>" + bar_chart(groups, x_label="pass@k (unbiased estimator, mean over tasks)",
                                            legend=[(f"pass@{k}", colors[k]) for k in ks], x_max=1.0,
                                            x_fmt=percent)
                     + caption([e], f"Per-category pass@k of {c.get('samples') or c.get('checkpoint')}.")
                     + "</figure>")
    other = [(n, m) for n, m in ms.items() if not _CATEGORY.match(n) and not n.startswith("eval.status.")]
    rows = [td(f"<code>{esc(n)}</code>", raw=True) + num(m.get("value"), m.get("unit", ""), metric=n, report=e.name,
                                                         ci=(m.get("stats") or {}).get("ci95"))
            + td(m.get("unit")) + td(m.get("note", "")) for n, m in other]
    parts.append("<h2>All metrics</h2>" + table(["metric", "#value", "unit", "note"], rows))
    if d.get("unsound_effect"):
        parts.append(f'<p class="muted">{esc(d["unsound_effect"])}</p>')
    for key, title in (("unsound", "Unsound tasks (excluded from .sound metrics)"),
                       ("tasks_without_samples", "Tasks without samples"), ("load_issues", "Load issues"),
                       ("notes", "Notes")):
        items = d.get(key) or []
        if items:
            parts.append(f"<h3>{esc(title)}</h3><ul>" + "".join(f"<li>{esc(compact(i, 600))}</li>" for i in items)
                         + "</ul>")
    task_list = d.get("tasks") or []
    if task_list:
        parts.append(f'<h2 id="tasks">Tasks ({len(task_list)})</h2><p class="muted">Open a task to see every '
                     f'sample: status, exit code, time, the first {HEAD_CHARS} characters of stdout and stderr, '
                     'syntax and shellcheck verdicts, CodeBLEU against the reference.</p>')
        by_cat: dict[str, list[dict]] = {}
        for t in task_list:
            by_cat.setdefault(str(t.get("category") or "uncategorised"), []).append(t)
        for cat, ts in by_cat.items():
            parts.append(f'<h3 id="cat-{esc(slug(cat))}">{esc(cat)}</h3>' + "".join(_task_block(t, ks) for t in ts))
    return page(f"Evaluation: {e.name}", "\n".join(parts), prefix="../", here="eval.html", footer=footer(entries))


def eval_index(entries: list[Entry]) -> str:
    from ..models import model_label

    evals = [e for e in entries if e.kind == "eval"]
    cols = ("eval.pass@1", "eval.pass@10", "eval.syntax.bash_n", "eval.shellcheck_clean", "eval.codebleu")
    rows = []
    for e in evals:
        ms = _metrics(e)
        c = e.report.get("config") or {}
        rows.append(td(f'<a href="eval/{esc(e.name)}.html">{esc(e.name)}</a>', raw=True)
                    + td(c.get("samples") or c.get("checkpoint")) + td(model_label(c) or "–") + num((ms.get("eval.samples") or ms.get("eval.sampling_samples") or {}).get("value"), "count")
                    + "".join(num((ms.get(n) or {}).get("value"), "fraction", metric=n, report=e.name,
                                  ci=((ms.get(n) or {}).get("stats") or {}).get("ci95")) for n in cols)
                    + td(e.hardware) + td(e.created))
    body = ('<p class="lead">Every evaluation report; open one for per-category pass@k and each task\'s samples.</p>'
            + (table(["report", "samples", "model", "#n samples", *[f"#{n[5:]}" for n in cols], "hardware", "created"], rows)
               if rows else '<p class="muted">no eval reports among the inputs (run <code>harness eval</code>)</p>'))
    return page("Evaluation", body, here="eval.html", footer=footer(entries))
