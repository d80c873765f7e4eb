"""`axme quota show|set|upgrade-request`: the workspace's quotas, AXME's CLI commands (`show`, `upgrade-request`:
an access request for a higher tier, which a reviewer approves), and `set` for the operator of a runtime of one's
own.

AXME removed `quota set` from its CLI: on its cloud, users must not set their own quotas (their tier does). Here
whoever holds the workspace key runs the runtime, so the operator is the one who sets them: `set` needs that key
(PATCH /v1/quotas refuses anyone else)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

app = typer.Typer(help="The workspace's quotas: how much of each it may use, and how much it does.",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command("show")
def show(base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Each quota dimension today: USED, LIMIT, USAGE% (⚠ at 90 % or more, ! at 70 % or more)."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.quotas import quota_table

    with client(base_url, api_key, context) as c:
        answer = c.enterprise_overview()
    output().result(answer, lambda: quota_table(answer["overview"]))


def limits_of(values: list[str], flag: str = "") -> dict[str, int | None]:
    """``DIMENSION=LIMIT`` words as {dimension: limit} (None: none); exit 2 naming the word and the fix. ``flag``:
    the option they came with (``--quota`` of `axme dev` / `axme server`), named in the message."""
    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError
    from axme_cli.protocol.quotas import DIMENSIONS, parse_assignment

    said = f"{flag} " if flag else ""
    example = "intents_per_day=5000" if flag else "intents_per_day=500 or sse_streams_max=none"
    limits: dict[str, int | None] = {}
    for value in values:
        try:
            name, limit = parse_assignment(value)
        except ValueError as exc:
            raise UsageError(f"{said}{shown(value)}: {exc}", code="invalid_quota",
                             fix=f"write {said}DIMENSION=LIMIT, e.g. {said}{example}; dimensions: "
                                 f"{', '.join(DIMENSIONS)}") from None
        limits[name] = limit
    return limits


@app.command("set")
def set_(
    limits: Annotated[list[str], typer.Argument(
        metavar="DIMENSION=LIMIT...", show_default=False,
        help="Limits to set, e.g. intents_per_day=500 payload_max_bytes=128KiB; LIMIT none removes one. The "
             "dimensions: intents_per_day, rate_limit_per_minute, payload_max_bytes, storage_bytes, actors_total, "
             "service_accounts_per_workspace, sse_streams_max. Those not named keep their limits.")],
    overage_mode: Annotated[str | None, typer.Option(
        "--overage-mode", show_default=False,
        help="block: a call past a limit is refused; grace or bill_overage: it goes through and is counted as "
             "overage [default: as it is].")] = None,
    hard: Annotated[bool | None, typer.Option(
        "--hard/--soft", show_default=False,
        help="--soft: refuse nothing, count what passes a limit [default: as it is].")] = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Set quota limits (the workspace key). A limit below what is used already is kept and holds for new work."""
    from axme_cli.cli.common import client, output
    from axme_cli.errors import UsageError
    from axme_cli.protocol.quotas import OVERAGE_MODES
    from axme_cli.render.quotas import amount

    chosen = limits_of(limits)
    if overage_mode is not None and overage_mode not in OVERAGE_MODES:
        raise UsageError(f"--overage-mode {overage_mode!r} is not one of {', '.join(OVERAGE_MODES)}",
                         fix="e.g. --overage-mode block")
    body: dict[str, Any] = {"dimensions": chosen}
    if overage_mode is not None:
        body["overage_mode"] = overage_mode
    if hard is not None:
        body["hard_enforcement"] = hard
    with client(base_url, api_key, context) as c:
        answer = c.update_quota(body)
    lines = ["✓ Quotas: " + " ".join(f"{name}={amount(name, limit) if limit is not None else 'none'}"
                                     for name, limit in chosen.items())]
    lines += [f"! {b['dimension']}: {amount(b['dimension'], b['used'])} in use, more than the limit "
              f"{amount(b['dimension'], b['limit'])} (kept; it holds for new work)"
              for b in answer.get("below_current_usage", [])]
    output().result(answer, lines)


@app.command("upgrade-request")
def upgrade_request(
    company: Annotated[str, typer.Option("--company", show_default=False, help="Your company (2 characters or more).")],
    justification: Annotated[str, typer.Option(
        "--justification", show_default=False, help="Why the workspace needs more (10 characters or more).")],
    tier: Annotated[str, typer.Option("--tier", help="The tier asked for: business, starter, corporate or "
                                                     "email_verified.")] = "business",
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Ask for a higher quota tier: an access request (quota_upgrade) a reviewer approves with `POST
    /v1/access-requests/{id}/review`; approved, the workspace's tier is recorded."""
    from axme_cli.cli.common import client, output
    from axme_cli.errors import UsageError
    from axme_cli.protocol.access_requests import TIERS

    company, justification = company.strip(), justification.strip()
    if len(company) < 2:
        raise UsageError("--company: give the company's name (2 characters or more)", fix="e.g. --company Acme")
    if len(justification) < 10:
        raise UsageError("--justification: say why the workspace needs more (10 characters or more)",
                         fix='e.g. --justification "nightly imports need 50,000 intents a day"')
    if tier not in TIERS:
        raise UsageError(f"--tier {tier!r} is not one of {', '.join(TIERS)}", fix="e.g. --tier business")
    with client(base_url, api_key, context) as c:
        me = c.whoami()
        answer = c.create_access_request({
            "request_type": "quota_upgrade", "requester_actor_id": me["principal"]["address"],
            "requested_tier": tier, "company_name": company, "justification": justification,
            "org_id": me["org_id"], "workspace_id": me["workspace_id"]})
    made = answer["access_request"]
    output().result(answer, [f"✓ Quota upgrade requested: {made['access_request_id']} (tier {made['requested_tier']}, "
                             f"state {made['state']}); a reviewer approves it (POST "
                             f"/v1/access-requests/{made['access_request_id']}/review)."])
