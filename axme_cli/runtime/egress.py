"""Outbound HTTP to URLs that callers handed the runtime (webhook subscriptions, http-binding agents): the one
place such connections are made, and where they are checked against the policy of egress_policy.py.

The check is made on the address actually dialled, when the socket is made
(the connector's ``socket_factory``), so a name that resolves elsewhere later (DNS rebinding) gains nothing; the
resolver drops refused answers first, so a name with public and internal answers still works and one with only
internal answers fails with one clear sentence. Redirects are never followed: a 3xx is a failed attempt. A
refusal says only what kind of address was refused, never anything learnt from it (nothing was sent).
"""

from __future__ import annotations

import socket
from ipaddress import ip_address

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from axme_cli.runtime.egress_policy import HINT, EgressRefused, Policy, article


class _Resolver(AbstractResolver):
    """Resolves with ``inner`` and keeps only the answers the policy allows."""

    def __init__(self, policy: Policy, inner: AbstractResolver) -> None:
        self.policy = policy
        self.inner = inner

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        answers = await self.inner.resolve(host, port, family)
        kinds = [self.policy.refusal(ip_address(a["host"])) for a in answers]
        kept = [a for a, kind in zip(answers, kinds, strict=True) if kind is None]
        if answers and not kept:
            kind = str(kinds[0])
            raise EgressRefused(f"refused: {host} resolves to {article(kind)} {kind} address; {HINT}")
        return kept

    async def close(self) -> None:
        await self.inner.close()


def refusal_in(exc: BaseException) -> EgressRefused | None:
    """The refusal behind an aiohttp error (aiohttp wraps it in ClientConnectorError), if it was one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, EgressRefused):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None


class Egress:
    """The runtime's outbound HTTP client: one aiohttp session whose every connection goes through the policy.
    ``resolver``: the resolver to ask before filtering (tests give one that answers what they need)."""

    def __init__(self, policy: Policy, *, timeout_seconds: float, user_agent: str,
                 resolver: AbstractResolver | None = None) -> None:
        connector = aiohttp.TCPConnector(resolver=_Resolver(policy, resolver or aiohttp.DefaultResolver()),
                                         socket_factory=policy.socket)
        # trust_env=False: no HTTP(S)_PROXY from the environment, so the address checked is the one dialled
        self.session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                             timeout=aiohttp.ClientTimeout(total=timeout_seconds),
                                             headers={"User-Agent": user_agent})

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body`` and return the status code (a redirect is not followed). Raises EgressRefused for a
        refused address, aiohttp.ClientError or ValueError for other failures, TimeoutError."""
        try:
            async with self.session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                return resp.status
        except aiohttp.ClientError as exc:
            refused = refusal_in(exc)
            if refused is not None:
                raise refused from None
            raise

    async def close(self) -> None:
        await self.session.close()
