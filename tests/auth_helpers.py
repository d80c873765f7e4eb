"""Shared by the login tests: a runtime whose dev mailer writes .eml files, and reading codes from them."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path
from typing import Any

import httpx

from tests.runtime_proc import RuntimeProcess


def auth_runtime(workdir: Path, *extra: str, backend: str = "sqlite") -> RuntimeProcess:
    """`axme dev` with its login mails in ``workdir/mail`` (and its own CLI context files in ``workdir``), without
    the limits on login calls (these tests log in from one address far more often than a person does)."""
    rt = RuntimeProcess(workdir, extra_args=["--mail-dir", str(workdir / "mail"), "--login-rate-limit", "0", *extra],
                        backend=backend)
    rt.env["AXME_CLI_SECRET_STORAGE"] = "file"
    return rt


def mail_dir(rt: RuntimeProcess) -> Path:
    return rt.workdir / "mail"


def read_code(mail_dir: Path, address: str) -> str:
    """The code of the newest mail to ``address`` (file names sort by time: <stamp>-<uuid7>.eml)."""
    for path in sorted(mail_dir.glob("*.eml"), reverse=True):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if str(msg["To"]).lower() == address.lower():
            found = re.search(r"\b(\d{6})\b", str(msg["Subject"]))
            assert found, msg["Subject"]
            body = msg.get_body(preferencelist=("plain",))
            assert body is not None and found.group(1) in body.get_content()
            return found.group(1)
    raise AssertionError(f"no mail to {address} in {mail_dir}")


def login(client: httpx.Client, mail_dir: Path, address: str) -> dict[str, Any]:
    """The whole email + code flow over HTTP; returns the verify answer (tokens, session)."""
    r = client.post("/v1/auth/login-intent", json={"email": address})
    assert r.status_code == 200, r.text
    intent_id = r.json()["intent_id"]
    r = client.post(f"/v1/auth/login-intent/{intent_id}/verify", json={"code": read_code(mail_dir, address)})
    assert r.status_code == 200, r.text
    return dict(r.json())


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
