"""`axme ui`: open the runtime's dashboard (/ui) in a browser."""

from __future__ import annotations

from typing import Annotated

import typer

from axme_cli.cli.common import BaseUrlOpt, ContextOpt

app = typer.Typer()  # commands of the root (see app.py)


@app.command("ui")
def ui(
    print_only: Annotated[bool, typer.Option("--print", help="Print the URL, open no browser.")] = False,
    base_url: BaseUrlOpt = None,
    context: ContextOpt = None,
) -> None:
    """Open the dashboard of the active context's runtime (served at /ui by `axme dev` and `axme server`)."""
    open_page("/ui/", print_only=print_only, base_url=base_url, context=context)


def open_page(path: str, *, print_only: bool, base_url: str | None, context: str | None) -> None:
    """Open ``path`` of the target runtime's dashboard in a browser (or print its URL; with --json answer it)."""
    from axme_cli.cli.common import output, target
    from axme_cli.render.console import out

    t = target(base_url=base_url, context=context)
    url = t.base_url.rstrip("/") + path
    shown = output()
    if shown.json:  # a script wants the URL, not a browser
        shown.result({"ok": True, "url": url, "context": t.context})
        return
    if print_only:
        out(url)
        return
    import webbrowser

    if webbrowser.open(url):
        out(f"Opened {url} (context {t.context}); log in with your API key or email.")
    else:
        out(f"No browser could be started here; open {url}")
