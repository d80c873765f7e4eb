"""`axme version` and `axme status`."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="Runtime URL (overrides the context).")]
ContextOpt = Annotated[str | None, typer.Option("--context", help="Use this context instead of the active one.")]


def register(app: typer.Typer) -> None:
    @app.command("version")
    def version(json_out: JsonOpt = False) -> None:
        """Print the version of axme."""
        import platform

        from axme_cli import __version__
        from axme_cli.render.console import out, print_json

        if json_out:
            print_json({"version": __version__, "python": platform.python_version()})
        else:
            out(f"axme {__version__} (python {platform.python_version()})")

    @app.command("status")
    def status(json_out: JsonOpt = False, base_url: BaseUrlOpt = None, context: ContextOpt = None) -> None:
        """Check that the runtime of the active context answers (GET /health)."""
        from axme_cli.client.http import Client
        from axme_cli.config.resolve import effective
        from axme_cli.render.console import key_values, print_json

        target = effective(base_url=base_url, context=context)
        with Client(target.base_url, timeout=10.0) as client:
            body = client.get("/health")
        if json_out:
            print_json(body)
            return
        key_values(
            [
                ("Runtime", f"{target.base_url} ({'ok' if body.get('ok') else 'not ok'})"),
                ("Context", target.context),
                ("Service", body.get("service", "?")),
                ("Version", body.get("version", "?")),
                ("Profile", body.get("deployment_profile", "?")),
                ("Storage", body.get("storage", "?")),
                ("Workspace", f"{body.get('org_id', '?')}/{body.get('workspace_id', '?')}"),
            ]
        )
