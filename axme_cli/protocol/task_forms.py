"""The fields a person fills in to answer a human task, from its ``form_schema`` (simple types; a JSON object
otherwise), plus ``evidence`` when it is required and ``assignee`` for an assignment. ``required`` holds for an
approving answer (a rejecting one needs no form, as in ``protocol.tasks.answer_problem``). Shared by the answer
page behind a task mail's link (runtime/api/task_pages.py) and `axme tasks answer` (render/prompts.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON_OBJECT = "__json__"  # the one field of a form_schema without simple properties: the answer as an object
KINDS = ("boolean", "integer", "number", "string")
TRUE = frozenset({"true", "yes", "y", "1"})
FALSE = frozenset({"false", "no", "n", "0"})


@dataclass
class FormField:
    name: str
    kind: str  # boolean | integer | number | string | choice | json
    required: bool
    label: str
    choices: list[Any] = field(default_factory=list)
    hint: str = ""


def form_fields(task: dict[str, Any]) -> list[FormField]:
    schema = task.get("form_schema")
    props = schema.get("properties") if isinstance(schema, dict) else None
    fields: list[FormField] = []
    if isinstance(schema, dict) and isinstance(props, dict) and props:
        required = set(schema.get("required") or [])
        for name, prop in props.items():
            prop = prop if isinstance(prop, dict) else {}
            kind = prop.get("type")
            if isinstance(kind, list):
                kind = next((k for k in kind if k != "null"), "string")
            if isinstance(prop.get("enum"), list) and prop["enum"]:
                kind = "choice"
            elif kind not in KINDS:
                kind = "json"
            fields.append(FormField(str(name), str(kind), name in required, str(prop.get("title") or name),
                                    list(prop.get("enum") or []), str(prop.get("description") or "")))
    elif isinstance(schema, dict) and schema:
        fields.append(FormField(JSON_OBJECT, "json", False, "Answer fields (a JSON object)",
                                hint="the fields of your answer, as the task's form asks for them"))
    names = {f.name for f in fields}
    if task.get("evidence_required") and "evidence" not in names:
        fields.append(FormField("evidence", "string", True, "Evidence",
                                hint="a link or a note (not needed to answer no)"))
    if task.get("task_type") == "assignment" and "assignee" not in names:
        fields.append(FormField("assignee", "string", False, "Assignee", hint="who takes it"))
    return fields


def parse_value(f: FormField, raw: str) -> Any:
    """The typed value of what a person typed for ``f``; ValueError (with a sentence) when it does not fit."""
    raw = raw.strip()
    if f.kind == "boolean":
        if raw.lower() in TRUE:
            return True
        if raw.lower() in FALSE:
            return False
        raise ValueError(f"{f.label}: answer yes or no")
    if f.kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{f.label}: must be a whole number") from None
    if f.kind == "number":
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{f.label}: must be a number") from None
    if f.kind == "choice":
        for choice in f.choices:
            if str(choice) == raw:
                return choice
        raise ValueError(f"{f.label}: must be one of {', '.join(str(c) for c in f.choices)}")
    if f.kind == "json":
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"{f.label}: not valid JSON ({exc})") from None
        if f.name == JSON_OBJECT and not isinstance(value, dict):
            raise ValueError(f"{f.label}: must be a JSON object")
        return value
    return raw


def place(result: dict[str, Any], f: FormField, value: Any) -> None:
    """Put a field's value where `form_schema` validation sees it: the top level of ``task_result``."""
    if f.name == JSON_OBJECT:
        result.update({k: v for k, v in value.items() if k not in ("outcome", "comment")})
    else:
        result[f.name] = value


def example(f: FormField) -> str:
    """A placeholder value for hints (`--data name=<example>`)."""
    if f.kind == "boolean":
        return "true"
    if f.kind in ("integer", "number"):
        return "1"
    if f.kind == "choice":
        return str(f.choices[0])
    return {"evidence": "LINK", "assignee": "NAME"}.get(f.name, f.name.upper())
