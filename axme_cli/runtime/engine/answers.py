"""Answers to human tasks: does an answer fit its task (allowed outcome, comment, evidence, form)?

A caller's ``form_schema`` is judged outside any transaction (``judge_form``, on a worker thread: see
``api.common.write_answer``); the write operation only looks the verdict up (``check_task_result``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

from axme_cli.protocol import tasks
from axme_cli.runtime.engine.codec import dumps
from axme_cli.runtime.errors import Conflict, Unprocessable

# Verdicts of answers' forms under their tasks' form_schemas, by sha256 of (schema, form): ``judge_form`` fills
# it outside any transaction (on a worker thread, see api.common.write_answer), ``check_task_result`` only looks
# here. Validating a caller's schema costs what the caller makes it cost (up to its size limits, times the
# answer's size), which must not be paid while the writer holds a transaction (on SQLite, on the event loop).
_FORM_VERDICTS: OrderedDict[bytes, tuple[str, str] | None] = OrderedDict()
_FORM_VERDICTS_KEPT = 4096
_FORM_LOCK = threading.Lock()


def _form_key(schema: dict[str, Any], form: dict[str, Any]) -> bytes:
    return hashlib.sha256(dumps([schema, form]).encode()).digest()


def judge_form(schema: dict[str, Any], form: dict[str, Any]) -> None:
    """Validate ``form`` against ``schema`` and keep the verdict for the write that follows."""
    verdict = tasks.form_problem(schema, form)
    key = _form_key(schema, form)
    with _FORM_LOCK:
        _FORM_VERDICTS[key] = verdict
        _FORM_VERDICTS.move_to_end(key)
        while len(_FORM_VERDICTS) > _FORM_VERDICTS_KEPT:
            _FORM_VERDICTS.popitem(last=False)


class FormUnjudged(Conflict):
    """An answer's form has no verdict yet: the caller judges it (``judge_form``) and runs the operation again.
    Reaching a client (409), it means the task changed between the two runs."""

    def __init__(self, schema: dict[str, Any], form: dict[str, Any]) -> None:
        super().__init__("the answer could not be checked against the task's form_schema (the task changed "
                         "meanwhile); send it again", code="answer_not_checked")
        self.schema = schema
        self.form = form


def check_task_result(task: dict[str, Any] | None, body: dict[str, Any]) -> None:
    """Refuse a human answer that does not fit its task (422); the task stays open. The form's verdict comes
    from ``judge_form``; without one, FormUnjudged (raised before the operation changed anything)."""
    result = body.get("task_result")
    if not task or not isinstance(result, dict):
        return
    problem = tasks.answer_problem(task, result)
    pending = tasks.form_to_check(task, result) if problem is None else None
    if pending is not None:
        key = _form_key(*pending)
        with _FORM_LOCK:
            if key not in _FORM_VERDICTS:
                raise FormUnjudged(*pending)
            verdict = _FORM_VERDICTS[key]
        if verdict is not None:
            field, message = verdict
            problem = (field, message, {"form_schema": pending[0]} if field.startswith("task_result") else {})
    if problem is not None:
        field, message, details = problem
        raise Unprocessable(f"{field}: {message}", details={"field": field, **details})
