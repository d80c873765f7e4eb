"""Human tasks end to end (issue 6): each task type through the CLI and the SDK, task mail with single-use
links to the answer page (real HTTP form posts), reminders and escalation of a direct task, `axme tasks
answer` in a pseudo-terminal, and the manual_action task a failed compensation opens. The runtime runs on a test
clock: reminders, deadlines and mail retries fire when a test moves it, not after a real wait."""

from __future__ import annotations

import email
import json
import os
import pty
import re
import select
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from axme_sdk import AxmeClient, AxmeClientConfig, AxmeValidationError

from axme_cli.runtime.clock import ManualClock, iso
from tests.agents_helper import FeedAgent, agent_key
from tests.cli.helpers import cli_invoke
from tests.conftest import SHARED, new_intent, unique
from tests.runtime.api.test_tasks import axme, task_intent
from tests.runtime_proc import TLS, RuntimeProcess
from tests.runtime_thread import RuntimeThread

FORM = {"type": "object", "required": ["approved"],
        "properties": {"approved": {"type": "boolean"}, "eta_minutes": {"type": "integer"}}}

# task type: (task fields, an answer that fits, the same answer through the CLI, the hint `tasks get` shows)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], list[str], str]] = {
    "approval": ({}, {"outcome": "approved"}, ["approve"], "axme tasks approve {id}"),
    "confirmation": ({}, {"outcome": "confirmed"}, ["confirm"], "axme tasks confirm {id}"),
    "review": ({}, {"outcome": "changes_requested", "comment": "add tests"},
               ["submit", "--outcome", "changes_requested", "--comment", "add tests"],
               "axme tasks submit {id} --outcome changes_requested"),
    "assignment": ({}, {"outcome": "assigned", "assignee": "alice"}, ["assign", "--data", "assignee=alice"],
                   "axme tasks assign {id} --data assignee=NAME"),
    "form": ({"form_schema": FORM}, {"outcome": "submitted", "approved": True, "eta_minutes": 15},
             ["submit", "--outcome", "submitted", "--data", "approved=true", "--data", "eta_minutes=15"],
             "axme tasks submit {id} --outcome submitted --data approved=true"),
    "clarification": ({"required_comment": True}, {"outcome": "provided", "comment": "the blue one"},
                      ["submit", "--outcome", "provided", "--comment", "the blue one"],
                      "axme tasks submit {id} --outcome provided --comment ANSWER"),
    "manual_action": ({"evidence_required": True}, {"outcome": "completed", "evidence": "https://ci/run/7"},
                      ["complete", "--data", "evidence=https://ci/run/7"],
                      "axme tasks complete {id} --data evidence=LINK"),
    "override": ({"required_comment": True}, {"outcome": "override_approved", "comment": "hotfix"},
                 ["submit", "--outcome", "override_approved", "--comment", "hotfix"],
                 "axme tasks submit {id} --outcome override_approved --comment WHY"),
}
REJECTING = {"review"}  # changes_requested says no


@pytest.fixture(scope="module")
def rt(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeThread]:
    work = tmp_path_factory.mktemp("taskmail")
    proc = RuntimeThread(work, extra_args=["--redelivery-seconds", "30", "--mail-dir", str(work / "mail")],
                         clock=ManualClock(), backend=backend)
    proc.start()
    yield proc
    proc.retire()


@pytest.fixture
def api(rt: RuntimeProcess) -> Iterator[httpx.Client]:
    with rt.client() as client:
        yield client


def mail_dir(rt: RuntimeProcess) -> Path:
    return rt.workdir / "mail"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def mails(rt: RuntimeProcess, intent_id: str, count: int) -> list[Message]:
    """The task mails about ``intent_id`` (oldest first), once there are at least ``count``."""
    def found() -> list[Path]:
        files = sorted(mail_dir(rt).glob(f"*-task-{intent_id}-*.eml"))
        return files if len(files) >= count else []

    return [email.message_from_bytes(p.read_bytes()) for p in wait_for(f"{count} mails", found)]


def link_of(msg: Message) -> str:
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    found = re.search(r"https?://\S+/t/[A-Za-z0-9_-]{43}", body.decode())
    assert found, body
    return found.group(0)


def events(api: httpx.Client, intent_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/v1/intents/{intent_id}/events").json()["events"])


def intent_of(api: httpx.Client, intent_id: str) -> dict[str, Any]:
    return dict(api.get(f"/v1/intents/{intent_id}").json()["intent"])


def all_due_fired(rt: RuntimeThread, api: httpx.Client) -> None:
    """Return once the scheduler has fired everything due at the clock's now: a sentinel intent whose deadline is
    a moment from now times out when the clock moves past it, and timers fire in the order they fall due."""
    r = api.post("/v1/intents", json=new_intent(unique("sentinel"), deadline_at=iso(rt.clock.time() + 1)))
    assert r.status_code == 200, r.text
    rt.advance_clock(1)
    wait_for("the sentinel's deadline", lambda: intent_of(api, r.json()["intent_id"])["status"] == "TIMED_OUT")


def form_post(link: str, page: str, **fields: str) -> httpx.Response:
    """Post the page's form as a browser would (its hidden nonce, our own Origin)."""
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
    origin = "/".join(link.split("/")[:3])
    return httpx.post(link, data={**hidden, **fields}, headers={"Origin": origin}, verify=TLS)


# ---------------------------------------------------------------------------------------------
# each task type through the CLI (direct task intents) and the SDK (workflow human steps)


def in_process(rt: RuntimeProcess, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``axme(...)`` run in this process (cli_invoke). Only where nothing of the runtime's own output (a
    mail it prints) can come while it runs: the runner captures this process's stdout."""
    env = {"AXME_CONFIG_DIR": str(tmp_path / "cfg"), "NO_COLOR": "1", "AXME_CLI_SECRET_STORAGE": "file",
           "AXME_BASE_URL": rt.url, "AXME_API_KEY": rt.api_key or ""}
    result = cli_invoke(list(args), env=env)
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.mark.backends("sqlite")  # the CLI's side of each type; the SDK's below runs on both backends
@pytest.mark.parametrize("task_type", list(CASES))
def test_each_task_type_through_the_cli(rt: RuntimeProcess, api: httpx.Client, tmp_path: Path,
                                        task_type: str) -> None:
    fields, answer, cli, hint = CASES[task_type]
    intent_id = api.post("/v1/intents", json=task_intent(task_type=task_type, **fields)).json()["intent_id"]
    shown = in_process(rt, tmp_path, "tasks", "get", intent_id)
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"Task type:\s+{task_type}\n", shown.stdout), shown.stdout
    assert hint.format(id=intent_id) in shown.stdout, shown.stdout
    assert f"axme tasks answer {intent_id}" in shown.stdout
    done = in_process(rt, tmp_path, "tasks", cli[0], intent_id, *cli[1:], "--json")
    assert done.returncode == 0, done.stderr
    intent = json.loads(done.stdout)["intent"]
    assert intent["status"] == ("CANCELED" if task_type in REJECTING else "COMPLETED")
    assert {k: intent["result"][k] for k in answer} == answer
    assert intent["result"]["answered_by"].startswith("initiator://")


def sdk(rt: RuntimeProcess) -> AxmeClient:
    assert rt.api_key
    return AxmeClient(AxmeClientConfig(base_url=rt.url, api_key=rt.api_key))


def one_human_step(task_type: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "scenario_id": f"tasks.{task_type}.v1",
        "humans": [{"role": "ops", "contact": "ops@example.com", "display_name": "Ops"}],
        "workflow": {"steps": [{"step_id": "decide", "assigned_to": "ops", "requires_approval": True,
                                "human_task": {"title": f"A {task_type} task", "task_type": task_type, **fields}}]},
        "intent": {"type": "ops.decide.v1", "payload": {"change": "CHG-7"}},
    }


@pytest.mark.parametrize("task_type", list(CASES))
def test_each_task_type_through_the_sdk(rt: RuntimeProcess, task_type: str) -> None:
    fields, answer, _, _ = CASES[task_type]
    with sdk(rt) as client:
        applied = client.apply_scenario(one_human_step(task_type, fields))
        intent_id = applied["intent_id"]
        waiting = client.get_intent(intent_id)["intent"]
        assert (waiting["status"], waiting["waiting_reason"]) == ("WAITING", "WAITING_FOR_HUMAN")
        assert waiting["human_task"]["task_type"] == task_type
        with pytest.raises(AxmeValidationError):  # an outcome the task does not allow: 422, the task stays open
            client.resume_intent(intent_id, {"task_result": {"outcome": "maybe"}})
        assert client.get_intent(intent_id)["intent"]["status"] == "WAITING"
        client.resume_intent(intent_id, {"task_result": answer})
        intent = client.get_intent(intent_id)["intent"]
    if task_type in REJECTING:
        assert intent["status"] == "FAILED" and intent["error"]["failed_step"] == "decide"
    else:
        assert intent["status"] == "COMPLETED"
        result = intent["result"]["results"]["decide"]
        assert {k: result[k] for k in answer} == answer


# ---------------------------------------------------------------------------------------------
# mail, links and the answer page


def test_a_workflow_step_mails_a_link_that_answers_once(rt: RuntimeProcess, api: httpx.Client) -> None:
    bundle = json.loads((SHARED / "axme-examples" / "internal" / "human_approval.json").read_text())
    intent_id = api.post("/v1/scenarios/apply", json=bundle).json()["intent_id"]
    (msg,) = mails(rt, intent_id, 1)
    assert msg["To"] == "geobelsky@gmail.com" and msg["Subject"].startswith("Task for you: Direct approval")
    link = link_of(msg)
    page = httpx.get(link, verify=TLS)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "same-origin" and page.headers["x-frame-options"] == "DENY"
    assert all(f'name="outcome" value="{o}"' in page.text for o in ("approved", "rejected", "deferred"))
    assert "INFRA-DA-001" in page.text  # the payload, for the person to decide on

    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
    foreign = httpx.post(link, data={**hidden, "outcome": "approved"}, headers={"Origin": "https://evil.example"},
                         verify=TLS)
    assert foreign.status_code == 403
    forged = httpx.post(link, data={"ts": hidden["ts"], "nonce": "0" * 64, "outcome": "approved"}, verify=TLS)
    assert forged.status_code == 400 and "too old or did not come from this page" in forged.text
    assert intent_of(api, intent_id)["status"] == "WAITING"

    done = form_post(link, page.text, outcome="approved", comment="ship it")
    assert done.status_code == 200 and "Your answer (approved) was recorded" in done.text, done.text
    intent = intent_of(api, intent_id)
    assert intent["status"] == "COMPLETED"
    step = intent["result"]["results"]["direct_approval"]
    assert step["comment"] == "ship it" and step["answered_by"] == "actor://local/dev/geobelsky@gmail.com"

    again = form_post(link, page.text, outcome="rejected")
    assert again.status_code == 410 and "This task was answered" in again.text
    assert httpx.get(link, verify=TLS).status_code == 410
    assert intent_of(api, intent_id)["status"] == "COMPLETED"
    assert httpx.get(link.rsplit("/", 1)[0] + "/" + "A" * 43, verify=TLS).status_code == 404


def test_an_invalid_form_answer_shows_the_error_and_the_task_stays_open(rt: RuntimeProcess,
                                                                        api: httpx.Client) -> None:
    schema = {"type": "object", "required": ["approved"],
              "properties": {"approved": {"type": "boolean"}, "eta_minutes": {"type": "integer"},
                             "tags": {"type": "array", "items": {"type": "string"}}}}
    body = task_intent(task_type="form", form_schema=schema, notify_email="form@example.com",
                       allowed_outcomes=["submitted", "rejected"])
    intent_id = api.post("/v1/intents", json=body).json()["intent_id"]
    link = link_of(mails(rt, intent_id, 1)[0])
    page = httpx.get(link, verify=TLS).text
    assert 'name="f.approved"' in page and 'type="number"' in page and '<textarea id="field-tags"' in page

    missing = form_post(link, page, outcome="submitted", **{"f.eta_minutes": "15"})
    assert missing.status_code == 422
    assert "&#x27;approved&#x27; is a required property" in missing.text
    assert 'value="15"' in missing.text  # what was typed is kept
    bad_json = form_post(link, missing.text, outcome="submitted", **{"f.approved": "true", "f.tags": "[oops"})
    assert bad_json.status_code == 422 and "tags: not valid JSON" in bad_json.text
    wrong_type = form_post(link, page, outcome="submitted", **{"f.approved": "true", "f.eta_minutes": "soon"})
    assert wrong_type.status_code == 422 and "is not of type &#x27;integer&#x27;" in wrong_type.text
    assert intent_of(api, intent_id)["status"] == "WAITING"

    ok = form_post(link, page, outcome="submitted",
                   **{"f.approved": "true", "f.eta_minutes": "15", "f.tags": '["db", "eu"]'})
    assert ok.status_code == 200, ok.text
    result = intent_of(api, intent_id)["result"]
    assert (result["approved"], result["eta_minutes"], result["tags"]) == (True, 15, ["db", "eu"])


def test_the_page_escapes_what_the_task_and_payload_say(rt: RuntimeProcess, api: httpx.Client) -> None:
    body = task_intent(notify_email="ops@example.com", description='<img src=x onerror="alert(2)">')
    body["human_task"]["title"] = "Approve <script>alert(1)</script>"
    body["payload"] = {"note": "</pre><script>alert(3)</script>", "<b>key</b>": 1}
    intent_id = api.post("/v1/intents", json=body).json()["intent_id"]
    page = httpx.get(link_of(mails(rt, intent_id, 1)[0]), verify=TLS).text
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "Approve &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;/pre&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page


def test_reminders_and_escalation_of_a_direct_task(rt: RuntimeThread, api: httpx.Client) -> None:
    body = task_intent(notify_email="ops@example.com") | {
        "remind_after_seconds": 60, "remind_interval_seconds": 60, "max_reminders": 2,
        "escalate_to": "boss@example.com"}
    intent_id = api.post("/v1/intents", json=body).json()["intent_id"]

    def escalated() -> list[dict[str, Any]]:
        evs = events(api, intent_id)
        return evs if any(e["event_type"] == "intent.escalated" for e in evs) else []

    mails(rt, intent_id, 1)
    rt.advance_clock(60)  # the first reminder; its mail goes out before the next (escalation ends those links)
    mails(rt, intent_id, 2)
    rt.advance_clock(60)  # the second reminder escalates at once
    evs = wait_for("the escalation", escalated)
    reminders = [e for e in evs if e["event_type"] == "intent.reminder"]
    assert [e["details"]["reminder"] for e in reminders] == [1, 2]
    assert all(e["details"]["max_reminders"] == 2 for e in reminders)
    up = next(e for e in evs if e["event_type"] == "intent.escalated")
    assert up["details"] == {"escalated_to": "boss@example.com", "after_reminders": 2}
    assert up["pending_with"] == {"type": "human", "ref": "boss@example.com", "name": "boss@example.com"}
    intent = intent_of(api, intent_id)
    assert (intent["status"], intent["waiting_reason"], intent["remind_count"]) == ("WAITING", "WAITING_FOR_HUMAN", 2)

    # mail: the task, the first reminder (the last one escalates at once), then the new assignee's
    sent = mails(rt, intent_id, 3)
    assert [(m["To"], m["Subject"].split(":")[0]) for m in sent] == [
        ("ops@example.com", "Task for you"), ("ops@example.com", "Reminder 1/2"),
        ("boss@example.com", "Escalated to you")]
    for old in sent[:2]:  # escalation ends the links of the first assignee
        refused = httpx.get(link_of(old), verify=TLS)
        assert refused.status_code == 410 and "passed on to someone else" in refused.text
    link = link_of(sent[2])
    page = httpx.get(link, verify=TLS)
    assert page.status_code == 200 and "boss@example.com" in page.text
    assert form_post(link, page.text, outcome="approved").status_code == 200
    intent = intent_of(api, intent_id)
    assert intent["status"] == "COMPLETED"
    assert intent["result"]["answered_by"] == "actor://local/dev/boss@example.com"
    rt.advance_clock(600)  # no reminder after the answer: nothing of it is due any more
    all_due_fired(rt, api)
    assert [e["event_type"] for e in events(api, intent_id)][-1] == "intent.completed"
    assert len(list(mail_dir(rt).glob(f"*-task-{intent_id}-*.eml"))) == 3


def test_a_direct_task_times_out_at_its_deadline_and_its_link_dies(rt: RuntimeThread, api: httpx.Client) -> None:
    deadline = iso(rt.clock.time() + 3600)
    intent_id = api.post("/v1/intents", json=task_intent(notify_email="ops@example.com") | {
        "deadline_at": deadline}).json()["intent_id"]
    link = link_of(mails(rt, intent_id, 1)[0])
    assert httpx.get(link, verify=TLS).status_code == 200
    rt.advance_clock(3600)
    wait_for("the deadline", lambda: intent_of(api, intent_id)["status"] == "TIMED_OUT")
    gone = httpx.get(link, verify=TLS)
    assert gone.status_code == 410 and "This task has ended" in gone.text and "TIMED_OUT" in gone.text


def test_an_unsent_mail_survives_a_crash_and_is_sent_by_the_next_runtime(tmp_path: Path) -> None:
    """The outbox row is written with the task: a send that failed (nobody listens on the SMTP port) is kept,
    kill -9 loses nothing, and the next runtime sends it when its retry falls due."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    db = tmp_path / "dev.db"
    first = RuntimeProcess(tmp_path, db=db, extra_args=["--smtp-url", f"smtp://127.0.0.1:{closed_port}"]).start()
    try:
        with first.client() as api:
            intent_id = api.post("/v1/intents", json=task_intent(notify_email="ops@example.com")).json()["intent_id"]

        def tried() -> bool:
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT attempts, state FROM task_mail WHERE intent_id = ?", (intent_id,)).fetchone()
            return row is not None and row[0] >= 1 and row[1] == "pending"

        wait_for("a failed send", tried)
    finally:
        first.kill()
    second = RuntimeThread(tmp_path, db=db, extra_args=["--mail-dir", str(tmp_path / "mail")],
                           clock=ManualClock()).start()
    try:
        second.advance_clock(5)  # the first retry's backoff (engine/human.py: MAIL_RETRY_SECONDS)
        sent = wait_for("the retried mail", lambda: sorted((tmp_path / "mail").glob(f"*-task-{intent_id}-*.eml")))
        msg = email.message_from_bytes(sent[0].read_bytes())
        assert msg["To"] == "ops@example.com" and len(sent) == 1
        assert f"{second.url}/t/" in link_of(msg) and httpx.get(link_of(msg), verify=TLS).status_code == 200
    finally:
        second.stop()


# ---------------------------------------------------------------------------------------------
# `axme tasks answer`


def test_tasks_answer_without_a_terminal_exits_2(rt: RuntimeProcess, api: httpx.Client, tmp_path: Path) -> None:
    intent_id = api.post("/v1/intents", json=task_intent()).json()["intent_id"]
    env = dict(os.environ, AXME_CONFIG_DIR=str(tmp_path / "cfg"), NO_COLOR="1", AXME_CLI_SECRET_STORAGE="file",
               AXME_BASE_URL=rt.url, AXME_API_KEY=rt.api_key or "")
    done = subprocess.run([sys.executable, "-m", "axme_cli", "tasks", "answer", intent_id], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "needs a terminal" in done.stderr and f"axme tasks submit {intent_id} --outcome" in done.stderr
    assert intent_of(api, intent_id)["status"] == "WAITING"


class Terminal:
    """`axme ...` on a pseudo-terminal: read what it shows, type answers."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "axme_cli", *args], env=env, stdin=slave, stdout=slave,
                                     stderr=slave, close_fds=True)
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} did not appear; the terminal shows:\n{self.seen}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"{text!r} did not appear before exit; the terminal shows:\n{self.seen}")
                self.seen += re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", chunk.decode(errors="replace")).replace("\r", "")
        shown, self.seen = self.seen, self.seen[self.seen.index(text) + len(text):]
        return shown

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def close(self) -> int:
        code = self.proc.wait(30)
        os.close(self.master)
        return code


def test_tasks_answer_asks_in_a_terminal(rt: RuntimeProcess, api: httpx.Client, tmp_path: Path) -> None:
    schema = {"type": "object", "required": ["approved", "eta_minutes"],
              "properties": {"approved": {"type": "boolean"}, "eta_minutes": {"type": "integer"},
                             "region": {"type": "string", "enum": ["eu", "us"]}, "notes": {"type": "string"}}}
    body = task_intent(task_type="form", form_schema=schema, required_comment=True,
                       allowed_outcomes=["submitted", "rejected"])
    intent_id = api.post("/v1/intents", json=body).json()["intent_id"]
    env = dict(os.environ, AXME_CONFIG_DIR=str(tmp_path / "cfg"), NO_COLOR="1", AXME_CLI_SECRET_STORAGE="file",
               AXME_BASE_URL=rt.url, AXME_API_KEY=rt.api_key or "", COLUMNS="200", TERM="xterm")
    term = Terminal(["tasks", "answer", intent_id], env)
    try:
        shown = term.expect("Outcome (number or name)")
        assert "1. submitted" in shown and "2. rejected" in shown and "Approve CHG-1" in shown
        term.type("maybe")
        term.expect("Choose 1-2 or one of: submitted, rejected")
        term.expect("Outcome (number or name)")
        term.type("1")
        term.expect("Comment (required)")
        term.type("")
        term.expect("This task requires a comment.")
        term.expect("Comment (required)")
        term.type("checked the plan")
        term.expect("approved (yes/no, required)")
        term.type("perhaps")
        term.expect("approved: answer yes or no")
        term.expect("approved (yes/no, required)")
        term.type("yes")
        term.expect("eta_minutes (integer, required)")
        term.type("soon")
        term.expect("eta_minutes: must be a whole number")
        term.expect("eta_minutes (integer, required)")
        term.type("15")
        term.expect("region (one of eu, us, Enter to skip)")
        term.type("eu")
        term.expect("notes (string, Enter to skip)")
        term.type("")
        term.expect(f"Task submitted: {intent_id} (outcome=submitted)")
    finally:
        code = term.close()
    assert code == 0
    result = intent_of(api, intent_id)["result"]
    assert {k: result.get(k) for k in ("outcome", "comment", "approved", "eta_minutes", "region")} == {
        "outcome": "submitted", "comment": "checked the plan", "approved": True, "eta_minutes": 15, "region": "eu"}
    assert "notes" not in result


# ---------------------------------------------------------------------------------------------
# a compensation that fails for good


def test_a_failed_compensation_opens_a_manual_action_task(rt: RuntimeProcess, api: httpx.Client,
                                                          tmp_path: Path) -> None:
    name = f"inventory-{uuid.uuid4().hex[:8]}"
    bundle = {
        "scenario_id": "undo.by.hand.v1",
        "agents": [{"role": "inventory", "address": name, "create_if_missing": True}],
        "humans": [{"role": "ops", "contact": "ops@example.com"}],
        "workflow": {"steps": [
            {"step_id": "reserve", "assigned_to": "inventory", "retry": {"max_retries": 0},
             "compensate": {"assigned_to": "inventory", "retry": {"max_retries": 0}}},
            {"step_id": "approve", "assigned_to": "ops", "requires_approval": True},
        ]},
        "intent": {"type": "order.place.v1", "payload": {"order_id": "ord_1"}},
    }
    applied = api.post("/v1/scenarios/apply", json=bundle).json()
    intent_id = applied["intent_id"]

    def handle(frame: dict[str, Any]) -> dict[str, Any]:
        if frame["payload"].get("compensation"):
            return {"action": "fail", "reason": "the warehouse API is down"}
        return {"action": "complete", "reserved": True}

    agent = FeedAgent(rt.url, agent_key(api, applied["agents"][0]["address"]), name, handle)
    agent.start()
    try:
        def task_of(key: str, value: str) -> Callable[[], dict[str, Any] | None]:
            def check() -> dict[str, Any] | None:
                intent = intent_of(api, intent_id)
                waits = intent.get("waiting_reason") == "WAITING_FOR_HUMAN"
                return intent if waits and (intent.get("human_task") or {}).get(key) == value else None
            return check

        wait_for("the approval step", task_of("step_id", "approve"))
        no = api.post(f"/v1/intents/{intent_id}/resume", json={"task_result": {"outcome": "rejected"}})
        assert no.status_code == 200, no.text
        task = wait_for("the manual task", task_of("task_type", "manual_action"))
    finally:
        agent.stop()
    assert (task["status"], task["waiting_reason"]) == ("WAITING", "WAITING_FOR_HUMAN")
    assert task["human_task"]["allowed_outcomes"] == ["completed", "failed"]
    assert "reserve" in task["human_task"]["title"]
    kinds = [e["event_type"] for e in events(api, intent_id)]
    assert kinds[-2:] == ["intent.compensation_failed", "intent.human_task_assigned"]
    listed = axme(rt, tmp_path, "tasks", "list", "--json")
    assert intent_id in [t["intent_id"] for t in json.loads(listed.stdout)["items"]]

    done = axme(rt, tmp_path, "tasks", "complete", intent_id, "--comment", "released the stock by hand")
    assert done.returncode == 0, done.stderr
    intent = intent_of(api, intent_id)
    assert intent["status"] == "FAILED"
    assert intent["error"]["failed_step"] == "approve" and intent["error"]["compensation_failed"] == ["reserve"]
    assert intent["error"]["manual_undo"]["outcome"] == "completed"
    assert intent["error"]["manual_undo"]["comment"] == "released the stock by hand"


def test_links_use_the_public_url(tmp_path: Path) -> None:
    """Behind a proxy or load balancer the mailed link names --public-url, not the address bound."""
    proc = RuntimeThread(tmp_path, extra_args=["--mail-dir", str(tmp_path / "mail"),
                                               "--public-url", "https://axme.example.com/"]).start()
    try:
        with proc.client() as client:
            r = client.post("/v1/intents", json=task_intent(notify_email="ops@example.com"))
            assert r.status_code == 200, r.text
            intent_id = r.json()["intent_id"]
        sent = wait_for("the task mail", lambda: sorted((tmp_path / "mail").glob(f"*-task-{intent_id}-*.eml")))
        link = link_of(email.message_from_bytes(sent[0].read_bytes()))
        assert link.startswith("https://axme.example.com/t/"), link
    finally:
        proc.stop()
