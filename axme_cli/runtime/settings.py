"""Runtime settings, fixed at start-up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    org: str = "local"
    workspace: str = "dev"
    redelivery_seconds: float = 30.0
    default_max_delivery_attempts: int = 3
    max_body_bytes: int = 131_072
    idempotency_ttl_seconds: float = 24 * 3600.0
    service: str = "axme-dev"
    deployment_profile: str = "dev"
    # human login (email + one-time code)
    login_code_ttl_seconds: float = 300.0
    access_token_ttl_seconds: float = 900.0
    refresh_token_ttl_seconds: float = 30 * 24 * 3600.0
    # who may ask for a login code: addresses, "@domain" (any address there) or "*" (anyone); empty: nobody
    allowed_emails: tuple[str, ...] = ()
    show_login_codes: bool = False  # also print codes on the console (`axme dev` only: a log must not hold them)
    max_open_login_codes: int = 5
    max_login_code_tries: int = 5
    # outbound HTTP (webhooks, the http binding): a webhook delivery is tried up to webhook_max_attempts times,
    # waiting base * 4^(n-1) seconds (at most 600) after the n-th failure, then dead-lettered
    webhook_retry_base_seconds: float = 30.0
    webhook_max_attempts: int = 4
    outbound_timeout_seconds: float = 10.0  # one POST; longer counts as a failed attempt
    # Where outbound HTTP may connect (runtime/egress.py): never to internal addresses (loopback, private,
    # link-local, ...) except those in callback_networks (CIDRs, --allow-private-callbacks), plus loopback when
    # loopback_callbacks (`axme dev` bound to loopback, whose agents run on the same machine).
    callback_networks: tuple[str, ...] = ()
    loopback_callbacks: bool = False
    # Slow clients (runtime/http1.py): a request's head must arrive within header_timeout_seconds (of the
    # connection, or of the previous response), its body within body_timeout_seconds of the head; a keep-alive
    # connection with no new request is closed after keep_alive_seconds.
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keep_alive_seconds: float = 5.0
    metrics_public: bool = False  # GET /metrics without a key (else the workspace admin key)
    # requests a second per key (token bucket, bursts of twice as many, per replica); 0 turns the limit off
    rate_limit_per_second: float = 1000.0
    # calls that carry no credential (login, the dashboard's login forms, task-mail links), counted per client
    # address and per email in token buckets per replica; login_calls_per_minute 0 turns all three limits off
    login_calls_per_minute: float = 30.0  # every such call from one address
    login_guesses_per_minute: float = 10.0  # code checks and unknown task-link tokens from one address
    login_codes_per_email: int = 5  # code requests for one email ...
    login_codes_window_seconds: float = 600.0  # ... within this many seconds
    # media uploads (/v1/media/*): the largest file (AXME's limit, 2 GiB), how long an upload URL lasts unless
    # create-upload says (ttl_seconds 60 .. 7 days), and how often a process sweeps expired uploads and dead parts
    media_max_bytes: int = 2**31
    media_ttl_seconds: float = 24 * 3600.0
    media_sweep_seconds: float = 60.0
    # POST /mcp: calls a minute of one tool for one owner (AXME's default), per replica; 0 turns the limit off
    mcp_tool_calls_per_minute: float = 120.0
    # Quotas (engine/quotas.py): the limits of a workspace whose policy nobody changed yet, as (dimension, limit)
    # pairs (`axme server --quota intents_per_day=5000`); none by default. Usage counted in memory is added to the
    # database every usage_flush_seconds (real time; a crash loses at most that much).
    quota_defaults: tuple[tuple[str, int], ...] = ()
    usage_flush_seconds: float = 2.0
    # The settings of a workspace other than the runtime's default one (runtime/scope.py settings_for): rows the
    # engine makes carry org / workspace; False for the runtime's own settings, whose rows carry NULL.
    scoped: bool = False

    @property
    def admin_address(self) -> str:
        return f"initiator://{self.org}/{self.workspace}/admin"
