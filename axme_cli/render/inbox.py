"""Inbox threads for people: the list of `axme inbox list` and the details of `axme inbox get`."""

from __future__ import annotations

from typing import Any

from axme_cli.render.console import key_values, out
from axme_cli.render.events import age
from axme_cli.render.tables import table


def threads(found: list[dict[str, Any]], owner: str | None) -> None:
    empty = f"No threads in the inbox of {owner}." if owner else "No threads in your inbox."
    table(["THREAD ID", "STATUS", "SUBJECT", "FROM", "READ", "UPDATED"],
          [[t["thread_id"], t["status"], t.get("subject", t.get("intent_type", "")), t["to_agent"],
            "yes" if t.get("read") else "no", age(t.get("updated_at"))] for t in found],
          empty=empty, status_column=None)


def thread(t: dict[str, Any]) -> None:
    completion = t.get("completion") or {}
    decision = t.get("decision") or {}
    rows: list[tuple[str, Any]] = [
        ("Thread ID:", t["thread_id"]), ("Intent ID:", t["intent_id"]), ("Subject:", t.get("subject", "")),
        ("Status:", t["status"]), ("Owner:", t["owner_agent"]), ("Handled by:", t["to_agent"]),
        ("Sent by:", t["from_agent"]), ("Outcome:", completion.get("status", "")),
        ("Read:", "yes" if t.get("read") else "no"),
    ]
    if t.get("delegated_to"):
        rows.append(("Delegated to:", ", ".join(t["delegated_to"])))
    if decision:
        comment = f" ({decision['comment']})" if decision.get("comment") else ""
        rows.append(("Decision:", f"{decision['decision']} by {decision['decided_by']}{comment}"))
    key_values(rows)
    out("Messages:")
    for m in t.get("messages") or []:
        out(f"  [{m['created_at']}] {m['author']} ({m['role']}): {m['content']}  <{m['message_id']}>")
    out("Timeline:")
    for e in t.get("timeline") or []:
        out(f"  [{e['at']}] {e['event_type']}  {e['actor']}")
    if t["status"] != "done":
        tid = t["thread_id"]
        out(f"Answer it with: axme inbox reply {tid} --message TEXT | axme inbox approve {tid} | "
            f"axme inbox reject {tid} --comment WHY")
