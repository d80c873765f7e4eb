"""The test suite's own rules: an assertion failing in a helper thread fails its test, and the in-process
runtime takes only flags that `axme dev` has, with the same meaning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from axme_cli.runtime.settings import Settings
from tests.runtime_thread import LISTS, SERVE_FLAGS, SETTINGS_FLAGS, SWITCHES, dev_options

ROOT = Path(__file__).resolve().parents[1]

FAILING_THREAD = '''
import threading

def test_a_helper_thread_fails() -> None:
    def check() -> None:
        assert 1 == 2, "wrong in the thread"

    t = threading.Thread(target=check)
    t.start()
    t.join()
'''


def test_an_assertion_in_a_thread_fails_the_test(tmp_path: Path) -> None:
    (tmp_path / "test_thread.py").write_text(FAILING_THREAD)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                          str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), "-p", "no:xdist",
                          str(tmp_path / "test_thread.py")], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env=dict(os.environ, AXME_SHARED_DIR=str(tmp_path),
                                                # the rule is pyproject's filterwarnings: the installed plugins
                                                # (schemathesis, hypothesis ...) only take seconds to load
                                                PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "wrong in the thread" in out.stdout and "1 failed" in out.stdout, out.stdout


def test_the_in_process_runtime_takes_axme_dev_flags() -> None:
    out = subprocess.run([sys.executable, "-m", "axme_cli", "dev", "--help"], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, COLUMNS="250", NO_COLOR="1", TERM="dumb"))
    assert out.returncode == 0, out.stderr
    for flag in [*SETTINGS_FLAGS, *SWITCHES, *LISTS, *SERVE_FLAGS]:
        assert f"{flag} " in out.stdout, f"`axme dev` has no {flag}"


def test_dev_options_are_what_axme_dev_on_loopback_runs_with() -> None:
    settings, serve = dev_options([])
    assert settings == Settings(allowed_emails=("*",), show_login_codes=True, loopback_callbacks=True)
    assert serve == {}
    settings, serve = dev_options(["--redelivery-seconds", "0.5", "--webhook-max-attempts", "3", "--metrics-public",
                                   "--allow-email", "Ann@Example.com", "--allow-private-callbacks", "10.1.2.3/8",
                                   "--mail-dir", "/tmp/m"])
    assert (settings.redelivery_seconds, settings.webhook_max_attempts, settings.metrics_public) == (0.5, 3, True)
    assert settings.allowed_emails == ("ann@example.com",) and settings.callback_networks == ("10.0.0.0/8",)
    assert serve == {"mail_dir": "/tmp/m"}
