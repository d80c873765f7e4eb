"""`axme tasks list|get|answer|approve|reject|confirm|complete|assign|submit`: human tasks from the command line."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt, FieldOpt, TypedFieldOpt

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
            base_url: str | None, api_key: str | None, context: str | None, fields: list[str] | None = None,
            typed_fields: list[str] | None = None) -> None:
    from axme_cli.cli.inputs import merged_data

    result: dict[str, Any] = {**merged_data(data_json, data, fields, typed_fields), "outcome": outcome}
    if comment:
        result["comment"] = comment
    _send(intent_id, result, base_url, api_key, context)


def _send(intent_id: str, result: dict[str, Any], base_url: str | None, api_key: str | None,
          context: str | None) -> None:
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        body = c.resume_intent(intent_id, {"task_result": result})
    output().result(body, f"✓ Task submitted: {intent_id} (outcome={result['outcome']}); the intent is now "
                          f"{body['intent']['status']}.")


def hints(intent_id: str, task: dict[str, Any]) -> list[str]:
    """How to answer this task: the interactive command, then the one-liners for its type, with the form's
    required fields, evidence and comment where the task asks for them."""
    from axme_cli.protocol.task_forms import JSON_OBJECT, example, form_fields

    lines = [f"axme tasks answer {intent_id}    (asks for each answer)"]
    fields = [f for f in form_fields(task) if f.required]
    extra = "".join(f" --data {f.name}={example(f)}" for f in fields if f.name != JSON_OBJECT)
    if any(f.name == JSON_OBJECT for f in form_fields(task)):
        extra += " --data-json '{...}'"
    for i, hint in enumerate(HINTS.get(task.get("task_type", "approval"), HINTS["approval"])):
        hint = hint.format(id=intent_id)
        if i == 0:
            hint = hint.replace(" --data evidence=LINK", "").replace(" --data-json '{...}'", "") + extra
        if task.get("required_comment") and "--comment" not in hint:
            hint += " --comment WHY"
        lines.append(hint)
    return lines


app = typer.Typer(help="Human tasks: list them and answer them.", no_args_is_help=True, rich_markup_mode=None)

@app.command("list")
def list_(base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Tasks waiting for a person (GET /v1/me/tasks)."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.events import age
    from axme_cli.render.tables import table

    with client(base_url, api_key, context) as c:
        found = c.my_tasks()
    output().items(found, lambda: table(
        ["INTENT ID", "TASK TYPE", "TITLE", "WAITING"],
        [[x["intent_id"], x["human_task"].get("task_type", ""), x["human_task"].get("title", ""),
          age(x.get("assigned_at"))] for x in found], empty="No pending tasks.", status_column=None))

@app.command("get")
def get(intent_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
        context: ContextOpt = None) -> None:
    """Show a task and how to answer it."""
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        body = c.get_intent(intent_id)
    output().result(body, lambda: _show_task(intent_id, body["intent"]))


def _show_task(intent_id: str, intent: dict[str, Any]) -> None:
    from axme_cli.protocol.task_forms import form_fields
    from axme_cli.render.console import key_values, out

    task = intent.get("human_task") or {}
    key_values([("Intent ID:", intent_id), ("Type:", intent["intent_type"]), ("Status:", intent["status"]),
                ("From:", intent["from_agent"]), ("Task:", task.get("title", "")),
                ("Description:", task.get("description", "")), ("Task type:", task.get("task_type", "")),
                ("Outcomes:", ", ".join(task.get("allowed_outcomes") or [])),
                ("Comment required:", "yes" if task.get("required_comment") else "no"),
                ("Evidence required:", "yes" if task.get("evidence_required") else "no"),
                ("Due at:", intent.get("due_at", ""))])
    fields = form_fields(task)
    if fields:
        out("Answer fields:")
        for f in fields:
            kind = f"one of {', '.join(str(c) for c in f.choices)}" if f.kind == "choice" else f.kind
            out(f"  {f.name} ({kind}{', required' if f.required else ''})" + (f": {f.hint}" if f.hint else ""))
    if intent.get("waiting_reason") == "WAITING_FOR_HUMAN":
        out("Answer it with:")
        for hint in hints(intent_id, task):
            out("  " + hint)
    else:
        out(f"Not waiting for a person (status {intent['status']}).")

def shortcut(name: str, outcome: str, doc: str) -> None:
    def command(intent_id: IdArg, comment: CommentOpt = None, data: DataOpt = None, field: FieldOpt = None,
                typed_field: TypedFieldOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
                context: ContextOpt = None) -> None:
        _answer(intent_id, outcome, comment, data, None, base_url, api_key, context, field, typed_field)

    command.__doc__ = doc
    app.command(name)(command)

shortcut("approve", "approved", "Approve a task (outcome approved).")
shortcut("reject", "rejected", "Reject a task (outcome rejected).")
shortcut("confirm", "confirmed", "Confirm a task (outcome confirmed).")
shortcut("complete", "completed", "Mark a manual action done (outcome completed).")
shortcut("assign", "assigned", "Assign a task (outcome assigned; add --data assignee=NAME).")

@app.command("answer")
def answer(intent_id: IdArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
           context: ContextOpt = None) -> None:
    """Answer a task interactively: pick the outcome, then the comment and form fields it asks for."""
    import sys

    from axme_cli.cli.common import client
    from axme_cli.errors import CliError, UsageError
    from axme_cli.render.prompts import ask_task_answer

    if not sys.stdin.isatty():
        raise UsageError(
            "`axme tasks answer` asks questions and needs a terminal",
            fix=f"answer without questions: `axme tasks approve|reject|confirm|complete|assign {intent_id}` or "
                f"`axme tasks submit {intent_id} --outcome OUTCOME [--comment TEXT] [--data k=v] "
                "[--data-json '{...}']` (see `axme tasks get ID`)", code="no_terminal")
    with client(base_url, api_key, context) as c:
        intent = c.get_intent(intent_id)["intent"]
    if intent.get("waiting_reason") != "WAITING_FOR_HUMAN" or not intent.get("human_task"):
        raise CliError(f"intent {intent_id} does not wait for a person (status {intent['status']})",
                       fix="`axme tasks list` shows the open tasks", code="not_a_task")
    _send(intent_id, ask_task_answer(intent), base_url, api_key, context)

@app.command("submit")
def submit(
    intent_id: IdArg,
    outcome: Annotated[str, typer.Option("--outcome", "-o", help="The outcome.", show_default=False)],
    comment: CommentOpt = None, data: DataOpt = None,
    data_json: Annotated[str | None, typer.Option("--data-json", help="Answer fields as a JSON object.",
                                                  show_default=False)] = None,
    field: FieldOpt = None, typed_field: TypedFieldOpt = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Answer a task with any allowed outcome and fields."""
    _answer(intent_id, outcome, comment, data, data_json, base_url, api_key, context, field, typed_field)
