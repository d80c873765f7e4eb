"""`axme usage summary|timeseries|rollup`: what the runtime did for the workspace, from its counters (AXME's CLI has
no usage command; these read /v1/usage/*)."""

from __future__ import annotations

from typing import Annotated

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

app = typer.Typer(help="Usage: what the runtime did for the workspace, per day and dimension.",
                  no_args_is_help=True, rich_markup_mode=None)

Days = Annotated[int, typer.Option("--days", min=1, max=90, help="How many days, today the last (1-90).")]


@app.command("summary")
def summary(
    window: Annotated[str, typer.Option(help="day (today), week (from Monday) or month, in UTC.")] = "day",
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Each quota dimension's use in the window, its limit, refusals and overage; and the window's counts."""
    from axme_cli.cli.common import client, output
    from axme_cli.errors import UsageError
    from axme_cli.render.quotas import summary_table

    if window not in ("day", "week", "month"):
        raise UsageError(f"--window {window!r} is not day, week or month", fix="e.g. --window week")
    with client(base_url, api_key, context) as c:
        answer = c.usage_summary(window)
    output().result(answer, lambda: summary_table(answer["summary"]))


@app.command("timeseries")
def timeseries(days: Days = 7, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
               context: ContextOpt = None) -> None:
    """One line per UTC day: intents callers created (and all), deliveries, requests and the busiest minute, the
    most streams open at once, bytes stored at its end, refusals."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.quotas import series_table

    with client(base_url, api_key, context) as c:
        answer = c.usage_timeseries(days)
    output().result(answer, lambda: series_table(answer["series"]["points"]))


@app.command("rollup")
def rollup(days: Days = 30, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
           context: ContextOpt = None) -> None:
    """Count the ended days again from the intents themselves, and fold their minutes into days (the workspace
    key)."""
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        answer = c.usage_rollup(days)
    rolled = answer["rollup"]["days"]
    output().result(answer, [f"✓ Rolled up {len(rolled)} day(s)"] + [
        f"{d['day']}  intents {d['intents_created']}  busiest minute {d['requests_peak_minute']}" for d in rolled])
