"""How login codes and task mails reach people: the dev console (+ .eml files), or a real SMTP server.

Sending never blocks the event loop: file writes and SMTP conversations run in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import socket
import ssl
import sys
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qs, unquote, urlsplit


class MailError(Exception):
    """The code could not be delivered (the login intent is then dead)."""


def _ttl_text(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def login_message(sender: str, email: str, code: str, ttl_seconds: float) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = email
    msg["Subject"] = f"Your axme login code: {code}"
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip(">") or "localhost")
    msg.set_content(
        f"Your axme login code is {code}\n\n"
        f"It expires in {_ttl_text(ttl_seconds)} and works once. Type it where `axme login` asks for it.\n"
        "If you did not try to sign in, ignore this mail.\n"
    )
    return msg


class Mailer:
    """Base: ``send_login_code`` returns once the code has left (or raises MailError)."""

    sender = "axme <axme@localhost>"

    def describe(self) -> str:
        raise NotImplementedError

    async def send_login_code(self, email: str, code: str, ttl_seconds: float, intent_id: str) -> None:
        raise NotImplementedError

    async def send_message(self, msg: EmailMessage, name: str) -> None:
        """Send any prepared mail (task mails); ``name`` names its .eml file on the dev mailer."""
        raise NotImplementedError


class DevMailer(Mailer):
    """Keep each mail as an .eml file in ``folder``; with ``show_codes`` (``axme dev`` only) also print login
    codes on the runtime's console. ``axme server`` never does: its output goes to logs, and a log that holds
    codes lets whoever reads it log in as anyone."""

    sender = "axme dev <axme-dev@localhost>"

    def __init__(self, folder: str | os.PathLike[str] | None = None, stream: TextIO | None = None, *,
                 show_codes: bool = False) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.stream = stream
        self.show_codes = show_codes
        if self.folder is not None and self.folder.is_dir():  # mails hold login codes and task links
            from axme_cli.config.files import make_private

            make_private(self.folder, 0o700)
            for mail in self.folder.glob("*.eml"):
                make_private(mail, 0o600)

    def describe(self) -> str:
        where = f"written to {self.folder}" if self.folder is not None else "not kept"
        return f"printed here and {where}" if self.show_codes else where

    async def send_login_code(self, email: str, code: str, ttl_seconds: float, intent_id: str) -> None:
        await asyncio.to_thread(self._send, email, code, ttl_seconds, intent_id)

    def _send(self, email: str, code: str, ttl_seconds: float, intent_id: str) -> None:
        if self.show_codes:
            stream = self.stream or sys.stdout
            stream.write(f"login code for {email}: {code} (expires in {_ttl_text(ttl_seconds)})\n")
            stream.flush()
        if self.folder is None:
            return
        from axme_cli.config.files import write_atomic

        msg = login_message(self.sender, email, code, ttl_seconds)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        try:
            write_atomic(self.folder / f"{stamp}-{intent_id}.eml", bytes(msg), mode=0o600, dir_mode=0o700)
        except OSError as exc:
            raise MailError(f"cannot write the mail into {self.folder}: {exc.strerror or exc}") from exc

    async def send_message(self, msg: EmailMessage, name: str) -> None:
        await asyncio.to_thread(self._send_message, msg, name)

    def _send_message(self, msg: EmailMessage, name: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(f"mail to {msg['To']}: {msg['Subject']}\n")
        stream.flush()
        if self.folder is None:
            return
        from axme_cli.config.files import write_atomic

        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        try:
            write_atomic(self.folder / f"{stamp}-{name}.eml", bytes(msg), mode=0o600, dir_mode=0o700)
        except OSError as exc:
            raise MailError(f"cannot write the mail into {self.folder}: {exc.strerror or exc}") from exc


class SmtpMailer(Mailer):
    """``smtp://[user:pass@]host[:port][?from=addr]`` (STARTTLS when offered) or ``smtps://`` (TLS from the start)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"{_redact(url)!r} is not an SMTP URL; use smtp://user:pass@host:port or smtps://...")
        self.tls = parts.scheme == "smtps"
        self.host = parts.hostname
        try:
            self.port = parts.port or (465 if self.tls else 25)
        except ValueError:
            raise ValueError(f"{_redact(url)!r} has an invalid port") from None
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        query = parse_qs(parts.query)
        self.sender = query.get("from", [None])[0] or f"axme <axme@{socket.getfqdn() or 'localhost'}>"
        self.timeout = timeout

    def describe(self) -> str:
        return f"sent through {'smtps' if self.tls else 'smtp'}://{self.host}:{self.port}"

    async def send_login_code(self, email: str, code: str, ttl_seconds: float, intent_id: str) -> None:
        msg = login_message(self.sender, email, code, ttl_seconds)
        await asyncio.to_thread(self._send, msg)

    async def send_message(self, msg: EmailMessage, name: str) -> None:
        await asyncio.to_thread(self._send, msg)

    def _send(self, msg: EmailMessage) -> None:
        context = ssl.create_default_context()
        try:
            smtp: smtplib.SMTP
            if self.tls:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if not self.tls and smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"the SMTP server {self.host}:{self.port} did not take the mail: {exc}") from exc


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def build_mailer(smtp_url: str | None, mail_dir: str | os.PathLike[str] | None, *, show_codes: bool = False) -> Mailer:
    if smtp_url:
        return SmtpMailer(smtp_url)
    return DevMailer(mail_dir, show_codes=show_codes)
