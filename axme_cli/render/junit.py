"""A JUnit XML report of a scenario test run (`axme scenarios test --junit-xml PATH`), the format CI systems read
(GitHub Actions reporters, GitLab's `artifacts:reports:junit`, Jenkins): a testsuite per test file, a testcase per
case; an unmet expectation is a <failure>, a case that could not be judged (it did not end, the runtime refused
it) an <error>."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

# Characters XML 1.0 cannot hold at all (an agent's reason may carry any of them).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: Any) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def report(cases: list[dict[str, Any]], *, seconds: float, hint: Any = None) -> bytes:
    """The XML of ``cases`` (each as `axme scenarios test --json` shows it). ``hint(intent_id)``: how to inspect a
    case's workflow intent, added to the text of a failure."""
    root = ET.Element("testsuites", name="axme scenarios test", tests=str(len(cases)),
                      failures=str(sum(c["state"] == "failed" for c in cases)),
                      errors=str(sum(c["state"] == "error" for c in cases)), time=f"{seconds:.3f}")
    files: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        files.setdefault(case["file"], []).append(case)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for name, group in files.items():
        suite = ET.SubElement(root, "testsuite", name=_text(name), tests=str(len(group)),
                              failures=str(sum(c["state"] == "failed" for c in group)),
                              errors=str(sum(c["state"] == "error" for c in group)), skipped="0",
                              time=f"{sum(c['seconds'] or 0 for c in group):.3f}", timestamp=stamp)
        for case in group:
            element = ET.SubElement(suite, "testcase", classname=_text(name), name=_text(case["case"]),
                                    file=_text(name), time=f"{case['seconds'] or 0:.3f}")
            inspect = hint(case["intent_id"]) if hint is not None and case.get("intent_id") else None
            if case["state"] == "failed":
                first = case["failures"][0]
                body = [f"{f['field']}: {f['message']}" for f in case["failures"]]
                failure = ET.SubElement(element, "failure", message=_text(f"{first['field']}: {first['message']}"),
                                        type="expectation")
                failure.text = _text("\n".join(body + _tail(case, inspect)))
            elif case["state"] == "error":
                error = ET.SubElement(element, "error", message=_text(case["error"] or "error"), type="error")
                error.text = _text("\n".join([case["error"] or "error", *_tail(case, inspect)]))
            if case.get("intent_id"):
                ET.SubElement(element, "system-out").text = _text(f"intent {case['intent_id']}"
                                                                   + (f": {inspect}" if inspect else ""))
    ET.indent(root)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n").encode()


def _tail(case: dict[str, Any], inspect: str | None) -> list[str]:
    lines = []
    if case.get("events"):
        lines.append("events: " + "; ".join(case["events"]))
    if case.get("intent_id"):
        lines.append(f"intent {case['intent_id']}" + (f" (inspect: {inspect})" if inspect else ""))
    return lines
