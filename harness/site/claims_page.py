"""claims.html of the results site: the latest claims audit, every claim with its verdict badge, basis,
evidence (each finding), quote and source line, grouped by verdict with counts; older audits are listed."""
from __future__ import annotations

from .html import Entry, badge, caption, compact, env_block, esc, footer, num, page, slug, table, td
from .svg import Bar, BarGroup, bar_chart

# Most serious first: the order of the sections and of the counts.
VERDICTS = ("impossible", "implausible", "refuted", "unverified", "confirmed")
COLORS = {"impossible": "#8e1b1b", "implausible": "#c2571a", "refuted": "#b8860b", "confirmed": "#2e7d32",
          "unverified": "#6b7785"}


def verdict_counts(e: Entry) -> dict[str, int]:
    counts = {v: 0 for v in VERDICTS}
    for c in e.report.get("claims") or []:
        v = str(c.get("verdict"))
        counts[v] = counts.get(v, 0) + 1
    return counts


def verdict_counts_html(e: Entry, prefix: str = "") -> str:
    return " ".join(f'<a href="{prefix}claims.html#verdict-{esc(slug(v))}">{badge(f"{v} {n}", f"v-{slug(v)}")}</a>'
                    if n else badge(f"{v} {n}", f"v-{slug(v)}") for v, n in verdict_counts(e).items())


def _finding(f: dict) -> str:
    verdict = f", {esc(f['verdict'])}" if f.get("verdict") else ""
    return f"<li><b>{esc(f.get('basis'))}</b>{verdict}: {esc(f.get('evidence'))}</li>"


def _upper(c: dict) -> str:
    return f" – {c['value_max']}" if c.get("value_max") is not None else ""


def _claim_row(c: dict) -> str:
    """id and metric | claimed value | hardware and configuration | verdict and basis | evidence, quote, source"""
    unit = c.get("unit", "")
    val = num(c.get("value"), "", metric=c.get("metric"),
              extra=f'<span class="unit">{esc(_upper(c))} {esc(unit)}</span>')
    note = lambda k: f'<br><span class="muted">{esc(c[k])}</span>' if c.get(k) else ""  # noqa: E731
    conf = c.get("configuration") or {}
    where_ = (f"<b>{esc(c.get('hardware'))}</b>{note('hardware_note')}"
              + (f"<br><code>{esc(compact(conf, 240))}</code>" if conf else "") + note("config_note"))
    findings = [f for f in c.get("findings") or [] if isinstance(f, dict)]
    ev = ("<ul>" + "".join(_finding(f) for f in findings) + "</ul>") if len(findings) > 1 else esc(c.get("evidence"))
    src = c.get("source") if isinstance(c.get("source"), dict) else {}
    loc = f"{src.get('file', '?')}:{src.get('line', '?')}" + (f" ({src['section']})" if src.get("section") else "")
    quote = f'<pre class="quote">{esc(c.get("quote"))}</pre>' if c.get("quote") else ""
    v = str(c.get("verdict"))
    return (td(f'<code id="claim-{esc(slug(c.get("id", "")))}">{esc(c.get("id"))}</code><br>'
               f'<span class="muted">{esc(c.get("metric"))}</span>', raw=True)
            + val + td(where_, raw=True)
            + td(badge(v, f"v-{slug(v)}") + f'<br><span class="muted">{esc(c.get("basis"))}</span>', raw=True)
            + td(ev + quote + f'<span class="muted">{esc(loc)}</span>', "evidence", raw=True))


def claims_page(entries: list[Entry]) -> str:
    audits = [e for e in entries if e.kind == "claims"]
    if not audits:
        return page("Claims audit", '<p class="muted">no claims reports among the inputs (run '
                                    '<code>harness claims --out results/claims.json</code>)</p>',
                    here="claims.html", footer=footer(entries))
    e = audits[-1]
    cfg = e.report.get("config") or {}
    claims = e.report.get("claims") or []
    counts = verdict_counts(e)
    parts = [f'<p class="lead">{len(claims)} claims from <code>{esc(cfg.get("claims_file", "?"))}</code>, each '
             'with its verdict, the basis of the verdict and the evidence. Reports consulted: '
             + esc(", ".join(str(p).rsplit("/", 1)[-1] for p in cfg.get("reports") or []) or "none") + ".</p>",
             env_block(e), f'<p class="counts">{verdict_counts_html(e)}</p>']
    groups = [BarGroup(v, [Bar(float(n), COLORS.get(v, "#6b7785"), f"{v}: {n} claims")]) for v, n in counts.items()]
    parts.append("<figure>" + bar_chart(groups, x_label="claims", x_fmt=lambda x: f"{x:g}", width=560)
                 + caption([e], f"Verdicts of the {len(claims)} audited claims (audit run on this machine; "
                                "each claim names the hardware it was made for).") + "</figure>")
    if len(audits) > 1:
        rows = [td(f'<a href="{esc(a.href())}">{esc(a.name)}</a>', raw=True) + td(a.created) + td(a.commit)
                + "".join(td(n, "num") for n in verdict_counts(a).values()) for a in reversed(audits)]
        parts.append("<h2>All audits</h2>" + table(["report", "created", "commit", *[f"#{v}" for v in counts]], rows))
    header = ["claim / metric", "#claimed", "hardware / configuration", "verdict / basis",
              "evidence; the seed's words and where"]
    for v in [*VERDICTS, *sorted(set(counts) - set(VERDICTS))]:
        rows = [_claim_row(c) for c in claims if str(c.get("verdict")) == v]
        if rows:
            parts.append(f'<h2 id="verdict-{esc(slug(v))}">{esc(v.capitalize())} ({len(rows)})</h2>'
                         + table(header, rows))
    return page("Claims audit", "\n".join(parts), here="claims.html", footer=footer(entries))
