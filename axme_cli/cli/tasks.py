"""`axme tasks list|get|approve|reject|confirm|complete|assign|submit`: human tasks from the command line."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

IdArg = Annotated[str, typer.Argument(help="The intent id of the task.", show_default=False)]
CommentOpt = Annotated[str | None, typer.Option("--comment", "-c", help="A comment (some tasks require one).",
                                                show_default=False)]
DataOpt = Annotated[list[str] | None, typer.Option("--data", help="Answer field key=value (repeatable).",
                                                   show_default=False)]

HINTS = {
    "approval": ["axme tasks approve {id}", "axme tasks reject {id} --comment WHY"],
    "review": ["axme tasks approve {id}", "axme tasks submit {id} --outcome changes_requested --comment WHAT",
               "axme tasks reject {id}"],
    "confirmation": ["axme tasks confirm {id}", "axme tasks reject {id}"],
    "assignment": ["axme tasks assign {id} --data assignee=NAME", "axme tasks submit {id} --outcome declined"],
    "form": ["axme tasks submit {id} --outcome submitted --data-json '{{...}}'"],
    "clarification": ["axme tasks submit {id} --outcome provided --comment ANSWER"],
    "manual_action": ["axme tasks complete {id} --data evidence=LINK", "axme tasks submit {id} --outcome failed"],
    "override": ["axme tasks submit {id} --outcome override_approved --comment WHY", "axme tasks reject {id}"],
}


def _answer(intent_id: str, outcome: str, comment: str | None, data: list[str] | None, data_json: str | None,
            base_url: str | None, api_key: str | None, context: str | None) -> None:
    from axme_cli.cli.common import client, emit, json_mode
    from axme_cli.cli.inputs import merged_data
    from axme_cli.render.console import out

    result: dict[str, Any] = {**merged_data(data_json, data), "outcome": outcome}
    if comment:
        result["comment"] = comment
    with client(base_url, api_key, context) as c:
        body = c.post(f"/v1/intents/{intent_id}/resume", json={"task_result": result})
    if json_mode():
        emit(body)
    else:
        out(f"✓ Task submitted: {intent_id} (outcome={outcome}); the intent is now {body['intent']['status']}.")


def register(app: typer.Typer) -> None:
    t = typer.Typer(help="Human tasks: list them and answer them.", no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(t, name="tasks")

    @t.command("list")
    def list_(base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
        """Tasks waiting for a person (GET /v1/me/tasks)."""
        from axme_cli.cli.common import client, emit, json_mode
        from axme_cli.render.events import age
        from axme_cli.render.tables import table

        with client(base_url, api_key, context) as c:
            found = c.get("/v1/me/tasks")["tasks"]
        if json_mode():
            emit(found)
            return
        table(["INTENT ID", "TASK TYPE", "TITLE", "WAITING"],
              [[x["intent_id"], x["human_task"].get("task_type", ""), x["human_task"].get("title", ""),
                age(x.get("assigned_at"))] for x in found], empty="No pending tasks.", status_column=None)

    @t.command("get")
    def get(intent_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
            context: ContextOpt = None) -> None:
        """Show a task and how to answer it."""
        from axme_cli.cli.common import client, emit, json_mode
        from axme_cli.render.console import key_values, out

        with client(base_url, api_key, context) as c:
            body = c.get(f"/v1/intents/{intent_id}")
        if json_mode():
            emit(body)
            return
        intent = body["intent"]
        task = intent.get("human_task") or {}
        key_values([("Intent ID:", intent_id), ("Type:", intent["intent_type"]), ("Status:", intent["status"]),
                    ("From:", intent["from_agent"]), ("Task:", task.get("title", "")),
                    ("Description:", task.get("description", "")), ("Task type:", task.get("task_type", "")),
                    ("Outcomes:", ", ".join(task.get("allowed_outcomes") or [])),
                    ("Comment required:", "yes" if task.get("required_comment") else "no"),
                    ("Due at:", intent.get("due_at", ""))])
        if intent.get("waiting_reason") == "WAITING_FOR_HUMAN":
            out("Answer it with:")
            for hint in HINTS.get(task.get("task_type", "approval"), HINTS["approval"]):
                out("  " + hint.format(id=intent_id))
        else:
            out(f"Not waiting for a person (status {intent['status']}).")

    def shortcut(name: str, outcome: str, doc: str) -> None:
        def command(intent_id: IdArg, comment: CommentOpt = None, data: DataOpt = None,
                    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
            _answer(intent_id, outcome, comment, data, None, base_url, api_key, context)

        command.__doc__ = doc
        t.command(name)(command)

    shortcut("approve", "approved", "Approve a task (outcome approved).")
    shortcut("reject", "rejected", "Reject a task (outcome rejected).")
    shortcut("confirm", "confirmed", "Confirm a task (outcome confirmed).")
    shortcut("complete", "completed", "Mark a manual action done (outcome completed).")
    shortcut("assign", "assigned", "Assign a task (outcome assigned; add --data assignee=NAME).")

    @t.command("submit")
    def submit(
        intent_id: IdArg,
        outcome: Annotated[str, typer.Option("--outcome", "-o", help="The outcome.", show_default=False)],
        comment: CommentOpt = None, data: DataOpt = None,
        data_json: Annotated[str | None, typer.Option("--data-json", help="Answer fields as a JSON object.",
                                                      show_default=False)] = None,
        base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
    ) -> None:
        """Answer a task with any allowed outcome and fields."""
        _answer(intent_id, outcome, comment, data, data_json, base_url, api_key, context)
