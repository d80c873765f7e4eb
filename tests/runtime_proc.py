"""Start the real runtime (`axme dev`) as a subprocess on a free loopback port, for tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ADMIN_KEY = "test-admin-key-0123456789abcdef"


class RuntimeProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        db: Path | None = None,
        api_key: str | None = ADMIN_KEY,
        extra_args: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.db = db or workdir / "dev.db"
        self.api_key = api_key
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.env = dict(os.environ, AXME_CONFIG_DIR=str(workdir / "config"), AXME_DATA_DIR=str(workdir / "data"))
        self.log = workdir / "runtime.log"
        self.port = 0  # fixed after the first start, so agents reconnect to the same URL after a restart

    def start(self, timeout: float = 20.0) -> RuntimeProcess:
        ready = self.workdir / f"ready-{time.monotonic_ns()}.json"
        args = [
            sys.executable,
            "-m",
            "axme_cli",
            "dev",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--ready-file",
            str(ready),
            *self.extra_args,
        ]
        if self.api_key:
            args += ["--api-key", self.api_key]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"axme dev exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"axme dev did not become ready:\n{self.log.read_text()}")
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        assert info["pid"] == self.proc.pid
        self.url = info["url"]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def client(self, api_key: str | None = None) -> httpx.Client:
        key = api_key or self.api_key
        headers = {"x-api-key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)
