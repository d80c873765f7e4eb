"""Rate limits: token buckets (``RateLimiter``), in memory and per replica.

- The per-key limit (``KeyLimit``): every authenticated call counts against its key (a person: the actor),
  ``--rate-limit N`` per second, bursts of 2N.
- Limits on the calls that carry no credential (``Throttle``): asking for a login code, checking one,
  refreshing a session, the dashboard's login forms, and task-mail links (``/t/{token}``). Without them a
  stranger could try half of the 6-digit code space in minutes, or make the runtime mail anybody as fast as it
  can. Keyed by the client address (an IPv6 client by its /64, which one host usually holds whole) and, for code
  requests, by the email.
"""

from __future__ import annotations

import ipaddress
import math

from axme_cli.runtime.clock import SYSTEM, Clock
from axme_cli.runtime.errors import TooManyRequests
from axme_cli.runtime.settings import Settings


class RateLimiter:
    """A token bucket per key (a principal, a client address, an email): ``rate`` requests a second on average,
    bursts of ``burst`` (default ``2 * rate``).

    In memory and per process (each replica counts on its own). Only the event loop thread calls it, so
    there is no lock; a check is one dict lookup and a little arithmetic.
    """

    MAX_BUCKETS = 100_000  # past that, start over rather than grow without bound

    def __init__(self, rate: float, burst: float | None = None, clock: Clock = SYSTEM) -> None:
        self._monotonic = clock.monotonic
        self.rate = rate
        self.burst = 2.0 * rate if burst is None else burst
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill (monotonic)]

    def wait_for(self, key: str, now: float | None = None) -> float:
        """Take a token for ``key``: 0.0 when there was one, else the seconds until there will be."""
        if now is None:
            now = self._monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_BUCKETS:
                self._buckets.clear()
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate


class KeyLimit:
    """The per-key limit: one token per authenticated call, from the bucket of the caller's key id."""

    def __init__(self, rate: float, clock: Clock = SYSTEM) -> None:
        self._bucket = RateLimiter(rate, clock=clock)

    def take(self, key_id: str) -> None:
        wait_s = self._bucket.wait_for(key_id)
        if wait_s <= 0:
            return
        retry = max(1, math.ceil(wait_s))
        rate, burst = self._bucket.rate, self._bucket.burst
        raise TooManyRequests(
            f"too many requests for this key (limit {rate:g}/s, bursts of {burst:g}); retry in {retry} s",
            details={"limit_per_second": rate, "burst": burst, "retry_after_seconds": retry, "retryable": True},
            retry_after=retry, limit_per_second=rate,
        )


class Throttle:
    """The three budgets (Settings ``login_*``): every such call per address, checks of a secret per address,
    codes asked for per email. Each check takes a token or raises 429 with ``Retry-After``."""

    def __init__(self, s: Settings, clock: Clock = SYSTEM) -> None:
        self.enabled = s.login_calls_per_minute > 0
        self._calls = RateLimiter(s.login_calls_per_minute / 60.0, burst=s.login_calls_per_minute, clock=clock)
        self._guesses = RateLimiter(s.login_guesses_per_minute / 60.0, burst=s.login_guesses_per_minute,
                                    clock=clock)
        self._codes = RateLimiter(s.login_codes_per_email / s.login_codes_window_seconds,
                                  burst=float(s.login_codes_per_email), clock=clock)
        self._settings = s

    def call(self, client: str | None) -> None:
        """One call without a credential from ``client`` (its address): 429 past the limit."""
        s = self._settings
        self._take(self._calls, _client_key(client), "too many login calls from your address",
                   "login_calls_per_address", s.login_calls_per_minute, 60.0)

    def guess(self, client: str | None) -> None:
        """One check of a secret (a login code, a task-link token) from ``client``: 429 past the limit."""
        s = self._settings
        self._take(self._guesses, _client_key(client), "too many code checks from your address",
                   "code_checks_per_address", s.login_guesses_per_minute, 60.0)

    def code_request(self, email: str) -> None:
        """One login code asked for ``email``: 429 past the limit (whoever asks)."""
        s = self._settings
        self._take(self._codes, email, "too many login codes asked for this email", "login_codes_per_email",
                   s.login_codes_per_email, s.login_codes_window_seconds)

    def _take(self, bucket: RateLimiter, key: str, what: str, dimension: str, limit: float, window: float) -> None:
        if not self.enabled:
            return
        wait_s = bucket.wait_for(key)
        if wait_s <= 0:
            return
        retry = max(1, math.ceil(wait_s))
        raise TooManyRequests(
            f"{what} ({limit:g} per {_window_text(window)}); retry in {retry} s",
            details={"dimension": dimension, "limit": limit, "window_seconds": window, "retry_after_seconds": retry,
                     "retryable": True},
            retry_after=retry,
        )


def _client_key(client: str | None) -> str:
    if not client:
        return "unknown"
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _window_text(seconds: float) -> str:
    if seconds == 60:
        return "minute"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"
