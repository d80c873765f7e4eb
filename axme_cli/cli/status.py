"""`axme version` and `axme status`."""

from __future__ import annotations

import typer

from axme_cli.cli.common import BaseUrlOpt, ContextOpt

app = typer.Typer()  # commands of the root (see app.py)


@app.command("version")
def version() -> None:
    """Print the version of axme."""
    import platform

    from axme_cli import __version__
    from axme_cli.cli.common import output

    output().result({"version": __version__, "python": platform.python_version()},
                    f"axme {__version__} (python {platform.python_version()})")

@app.command("status")
def status(base_url: BaseUrlOpt = None, context: ContextOpt = None) -> None:
    """Check that the runtime of the active context answers (GET /health)."""
    from functools import partial

    from axme_cli.cli.common import client, output, target
    from axme_cli.render.console import key_values

    t = target(base_url=base_url, context=context)
    with client(base_url, None, context, timeout=10.0, need_auth=False) as c:
        body = c.health()
    output().result(body, partial(key_values, [
        ("Runtime", f"{t.base_url} ({'ok' if body.get('ok') else 'not ok'})"),
        ("Context", t.context),
        ("Service", body.get("service", "?")),
        ("Version", body.get("version", "?")),
        ("Profile", body.get("deployment_profile", "?")),
        ("Storage", body.get("storage", "?")),
        ("Workspace", _workspace(t.org_id, t.workspace_id, body)),
    ]))


def _workspace(org_id: str | None, workspace_id: str | None, health: dict) -> str:
    """The context's workspace when it names one (a workspace key or a person's selection acts there), else the
    runtime's default one, which /health reports."""
    default = f"{health.get('org_id', '?')}/{health.get('workspace_id', '?')}"
    if org_id and workspace_id and f"{org_id}/{workspace_id}" != default:
        return f"{org_id}/{workspace_id} (the context's; the runtime's default is {default})"
    return default
