"""Questions on the terminal (rich prompts on stderr, so stdout keeps only the result): `axme tasks answer`."""

from __future__ import annotations

from typing import Any


def ask_task_answer(intent: dict[str, Any]) -> dict[str, Any]:
    """Ask for a ``task_result``: the outcome (from ``allowed_outcomes``), a comment (required or optional),
    and for an approving outcome each field of the form (typed, asked again until it fits)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.prompt import Prompt

    from axme_cli.protocol.task_forms import example, form_fields, parse_value, place
    from axme_cli.protocol.tasks import is_rejection

    console = Console(stderr=True, highlight=False)
    task = intent.get("human_task") or {}
    console.print(f"[bold]{escape(str(task.get('title') or intent.get('intent_type', '')))}[/]")
    if task.get("description"):
        console.print(escape(str(task["description"])))
    console.print(f"Task type: {escape(str(task.get('task_type', 'approval')))}")
    outcomes = [str(o) for o in task.get("allowed_outcomes") or ["approved", "rejected"]]
    for i, name in enumerate(outcomes, 1):
        console.print(f"  {i}. {escape(name)}")

    def ask(label: str, *, default: str = "", show_default: bool = True) -> str:
        return str(Prompt.ask(label, console=console, default=default, show_default=show_default)).strip()

    while True:
        raw = ask("Outcome (number or name)", default="1")
        if raw.isdigit() and 1 <= int(raw) <= len(outcomes):
            outcome = outcomes[int(raw) - 1]
            break
        if raw in outcomes:
            outcome = raw
            break
        console.print(f"[red]Choose 1-{len(outcomes)} or one of: {escape(', '.join(outcomes))}[/]")
    result: dict[str, Any] = {"outcome": outcome}
    while True:
        if task.get("required_comment"):
            comment = ask("Comment (required)", show_default=False)
            if not comment:
                console.print("[red]This task requires a comment.[/]")
                continue
        else:
            comment = ask("Comment (optional, Enter to skip)", show_default=False)
        break
    if comment:
        result["comment"] = comment
    if is_rejection(outcome):
        return result
    for f in form_fields(task):
        kind = {"choice": "one of " + ", ".join(str(c) for c in f.choices), "boolean": "yes/no",
                "json": "JSON"}.get(f.kind, f.kind)
        label = f"{f.label} ({kind}{', required' if f.required else ', Enter to skip'})"
        if f.hint:
            console.print(f"[dim]{escape(f.label)}: {escape(f.hint)} (e.g. {escape(example(f))})[/]")
        while True:
            raw = ask(label, show_default=False)
            if not raw:
                if f.required:
                    console.print(f"[red]{escape(f.label)} is required.[/]")
                    continue
                break
            try:
                place(result, f, parse_value(f, raw))
            except ValueError as exc:
                console.print(f"[red]{escape(str(exc))}[/]")
                continue
            break
    return result
