"""Server-rendered SVG: a workflow run's step waterfall, and a scenario's step graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from axme_cli.protocol.scenario import next_step_id
from axme_cli.runtime.clock import parse_iso
from axme_cli.runtime.ui.render import duration, e


@dataclass
class Bar:
    label: str
    kind: str  # "step" | "undo"
    attempt: int
    status: str  # COMPLETED | FAILED | RUNNING | WAITING | UNDONE | UNDO FAILED | UNDOING
    start: float
    end: float | None
    note: str = ""
    intent_id: str | None = None

    @property
    def css(self) -> str:
        return {"COMPLETED": "ok", "FAILED": "fail", "RUNNING": "run", "WAITING": "wait", "UNDONE": "undo",
                "UNDOING": "undo run", "UNDO FAILED": "fail undo", "RETRYING": "retry"}.get(self.status, "run")


def _ts(at: Any) -> float | None:
    try:
        return parse_iso(str(at)) if at else None
    except ValueError:
        return None


def waterfall_bars(wf: dict[str, Any], events: list[dict[str, Any]], parent_status: str) -> list[Bar]:
    """Bars from the parent's ``workflow`` view (each finished step attempt, with its duration) and its events
    (the running step, retry notes, and each compensation from ``intent.compensating`` to its outcome)."""
    bars: list[Bar] = []
    retry_note: dict[tuple[str, int], str] = {}
    for ev in events:
        d = ev.get("details") or {}
        if ev.get("event_type") == "intent.step_failed" and d.get("retry_in_seconds") is not None:
            retry_note[(str(d.get("step_id")), int(d.get("attempt") or 1))] = f"retry in {d['retry_in_seconds']} s"
    for h in wf.get("history") or []:
        start = _ts(h.get("started_at")) or 0.0
        end = _ts(h.get("ended_at"))
        attempt = int(h.get("attempt") or 1)
        note = str(h.get("reason") or "")
        extra = retry_note.get((str(h.get("step_id")), attempt))
        if extra:
            note = f"{note}; {extra}" if note else extra
        bars.append(Bar(str(h.get("step_id")), "step", attempt, str(h.get("status")), start, end, note,
                        h.get("intent_id")))
    done = {(b.label, b.attempt) for b in bars}
    current, attempt = wf.get("current_step"), int(wf.get("attempt") or 1)
    if current and wf.get("phase") == "running" and parent_status not in ("COMPLETED", "FAILED", "CANCELED",
                                                                          "TIMED_OUT") \
            and (current, attempt) not in done:
        started = None
        status = "RUNNING"
        for ev in events:
            d = ev.get("details") or {}
            if d.get("step_id") == current and ev.get("event_type") in ("intent.waiting",
                                                                         "intent.human_task_assigned"):
                started = _ts(ev.get("at"))
                status = "RUNNING" if ev.get("waiting_reason") == "WAITING_FOR_AGENT" else "WAITING"
        if started is not None:
            bars.append(Bar(str(current), "step", attempt, status, started, None))
    undo: dict[tuple[str, int], Bar] = {}
    for ev in events:
        d = ev.get("details") or {}
        etype = ev.get("event_type")
        key = (str(d.get("step_id")), int(d.get("attempt") or 1))
        at = _ts(ev.get("at")) or 0.0
        if etype == "intent.compensating":
            bar = Bar(key[0], "undo", key[1], "UNDOING", at, None, intent_id=d.get("compensation_intent_id"))
            undo[key] = bar
            bars.append(bar)
        elif etype in ("intent.compensated", "intent.compensation_failed") and key in undo:
            bar = undo[key]
            bar.end = at
            if etype == "intent.compensated":
                bar.status = "UNDONE"
            else:
                bar.status = "RETRYING" if d.get("retry_in_seconds") is not None else "UNDO FAILED"
                bar.note = str(d.get("reason") or "")
    return bars


def waterfall_svg(bars: list[Bar], now: float) -> str:
    if not bars:
        return '<p class="note">No step has started yet.</p>'
    t0 = min(b.start for b in bars)
    t1 = max(max((b.end or now) for b in bars), t0 + 0.001)
    label_w, bar_w, text_w, row_h = 190, 470, 130, 24
    width, height = label_w + bar_w + text_w, row_h * len(bars) + 30
    scale = bar_w / (t1 - t0)
    parts = [f'<svg class="waterfall" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="step waterfall">']
    for tick in range(5):  # a time axis with five marks
        x = label_w + bar_w * tick / 4
        parts.append(f'<line class="tick" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 18}"/>'
                     f'<text class="axis" x="{x:.1f}" y="{height - 4}">{e(duration((t1 - t0) * tick / 4))}</text>')
    for i, b in enumerate(bars):
        y = i * row_h + 4
        x = label_w + (b.start - t0) * scale
        w = max(2.0, ((b.end or now) - b.start) * scale)
        name = ("undo " if b.kind == "undo" else "") + b.label + (f" #{b.attempt}" if b.attempt > 1 else "")
        took = duration(max(0.0, (b.end or now) - b.start))
        tip = f"{name}: {b.status}, {took}" + (f" ({b.note})" if b.note else "")
        parts.append(
            f'<g class="bar {e(b.css)}" data-step="{e(b.label)}" data-kind="{e(b.kind)}" data-status="{e(b.status)}">'
            f"<title>{e(tip)}</title>"
            f'<text class="label" x="4" y="{y + 15}">{e(name)}</text>'
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 8}" rx="3"/>'
            f'<text class="took" x="{label_w + bar_w + 6}" y="{y + 15}">{e(took)} · {e(b.status.lower())}</text>'
            "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def waterfall_table(bars: list[Bar], now: float) -> str:
    rows = []
    for b in bars:
        link = f'<a href="/ui/intents/{e(b.intent_id)}">{e(b.intent_id[-12:])}</a>' if b.intent_id else ""
        rows.append(f'<tr data-kind="{e(b.kind)}"><td>{"undo " if b.kind == "undo" else ""}{e(b.label)}</td>'
                    f"<td>{b.attempt}</td><td>{e(b.status)}</td><td>{e(duration(max(0.0, (b.end or now) - b.start)))}"
                    f"</td><td>{e(b.note)}</td><td>{link}</td></tr>")
    return ('<table class="grid steps"><thead><tr><th>Step</th><th>Attempt</th><th>Status</th><th>Took</th>'
            f'<th>Note</th><th>Sub-intent</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


# ---------------------------------------------------------------------------------------------
# the step graph of a scenario


def _step_state(step_id: str, state: dict[str, Any] | None) -> str:
    if not state:
        return ""
    if step_id in (state.get("compensation_failed") or []):
        return "fail"
    if step_id in (state.get("compensated") or []):
        return "undo"
    if step_id == (state.get("failure") or {}).get("failed_step"):
        return "fail"
    if step_id in (state.get("completed") or []):
        return "ok"
    if step_id == state.get("step") and state.get("phase") == "running":
        return "run"
    return ""


def step_graph_svg(compiled: dict[str, Any], state: dict[str, Any] | None = None) -> str:
    """Boxes for the steps in bundle order, then "done"; arrows for on_success (solid), on_failure (dashed red)
    and compensation (dotted, to an undo box on the right). With a run's ``state``, steps are coloured."""
    steps: list[dict[str, Any]] = compiled.get("steps") or []
    roles = compiled.get("roles") or {}
    box_w, box_h, gap, left, undo_x = 230, 46, 34, 90, 440
    index = {st["step_id"]: i for i, st in enumerate(steps)}
    n = len(steps)
    height = (n + 1) * (box_h + gap) + 10
    width = 760

    def top(i: int) -> float:
        return 10 + i * (box_h + gap)

    parts = ["", "<defs>"]  # the <svg> tag goes first once the width is known
    for name in ("ok", "fail", "undo"):
        parts.append(f'<marker id="arrow-{name}" class="m-{name}" viewBox="0 0 10 10" refX="9" refY="5" '
                     'markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/>'
                     "</marker>")
    parts.append("</defs>")
    for i, st in enumerate(steps):
        sid = st["step_id"]
        y = top(i)
        nxt = next_step_id(steps, sid, "success")
        target = index.get(nxt, n) if nxt is not None else n  # n: the "done" box
        if target == i + 1:
            parts.append(f'<line class="edge ok" x1="{left + box_w / 2}" y1="{y + box_h}" x2="{left + box_w / 2}" '
                         f'y2="{top(target) - 2}" marker-end="url(#arrow-ok)"><title>on_success</title></line>')
        else:
            x0, y0, y1 = left, y + box_h / 2, top(target) + box_h / 2
            parts.append(f'<path class="edge ok" d="M{x0},{y0} C{x0 - 70},{y0} {x0 - 70},{y1} {x0 - 2},{y1}" '
                         f'marker-end="url(#arrow-ok)"><title>on_success: {e(nxt or "done")}</title></path>')
        if st.get("on_failure") and st["on_failure"] in index:
            j = index[st["on_failure"]]
            x0, y0, y1 = left + box_w, y + box_h / 2 + 6, top(j) + box_h / 2 + 6
            bend = left + box_w + 60 + 10 * (i % 3)
            parts.append(f'<path class="edge fail" d="M{x0},{y0} C{bend},{y0} {bend},{y1} {x0 + 2},{y1}" '
                         f'marker-end="url(#arrow-fail)"><title>on_failure: {e(st["on_failure"])}</title></path>')
        comp = st.get("compensate")
        if comp:
            label = f'undo: {comp.get("intent_type") or "a compensation"} ({comp.get("assigned_to", "")})'
            undo_w = max(box_w, 7 * len(label) + 24)
            width = max(width, undo_x + undo_w + 10)
            parts.append(f'<line class="edge undo" x1="{left + box_w}" y1="{y + box_h / 2 - 6}" x2="{undo_x - 2}" '
                         f'y2="{y + box_h / 2 - 6}" marker-end="url(#arrow-undo)"><title>compensate</title></line>'
                         f'<g class="node undo-node"><rect x="{undo_x}" y="{y + 6}" width="{undo_w}" '
                         f'height="{box_h - 12}" rx="6"/><text x="{undo_x + 10}" y="{y + box_h / 2 + 4}">'
                         f"{e(label)}</text></g>")
        kind = st.get("kind", "")
        holder = st.get("assigned_to") or ""
        holder_name = (roles.get(holder) or {}).get("display_name") or holder
        css = _step_state(sid, state)
        retry = (st.get("retry") or {}).get("max_retries")
        sub = f"{kind}{' · ' + str(holder_name) if holder_name else ''}{f' · retry ×{retry}' if retry else ''}"
        parts.append(f'<g class="node {css}" data-step="{e(sid)}"><rect x="{left}" y="{y}" width="{box_w}" '
                     f'height="{box_h}" rx="6"/><text class="name" x="{left + 10}" y="{y + 19}">{e(sid)}</text>'
                     f'<text class="sub" x="{left + 10}" y="{y + 36}">{e(sub)}</text></g>')
    y = top(n)
    parts.append(f'<g class="node end"><rect x="{left + 60}" y="{y}" width="{box_w - 120}" height="{box_h - 10}" '
                 f'rx="18"/><text class="name" x="{left + 92}" y="{y + 23}">done</text></g></svg>')
    parts[0] = (f'<svg class="graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
                'aria-label="step graph">')
    return "".join(parts)


def step_list(compiled: dict[str, Any]) -> str:
    """The same graph as a nested list (readable without the picture)."""
    steps: list[dict[str, Any]] = compiled.get("steps") or []
    items = []
    for st in steps:
        sid = st["step_id"]
        nxt = next_step_id(steps, sid, "success")
        edges = [f'<li class="e-ok">on_success → {e(nxt or "done")}</li>']
        if st.get("on_failure"):
            edges.append(f'<li class="e-fail">on_failure → {e(st["on_failure"])}</li>')
        else:
            edges.append('<li class="e-fail">on failure → compensate completed steps, then fail</li>')
        comp = st.get("compensate")
        if comp:
            edges.append(f'<li class="e-undo">compensation → {e(comp.get("assigned_to"))} '
                         f'({e(comp.get("intent_type") or "")})</li>')
        items.append(f'<li><b>{e(sid)}</b> <span class="note">{e(st.get("kind", ""))} · '
                     f'{e(st.get("assigned_to") or "")}</span><ul>{"".join(edges)}</ul></li>')
    return f'<ol class="steplist">{"".join(items)}</ol>'
