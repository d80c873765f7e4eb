"""Which addresses the runtime's outbound HTTP may reach (webhook subscriptions, http-binding agents, callback
URLs), without the HTTP client itself: the API checks callback URLs at create time with this, and a runtime that
sends nothing never imports aiohttp (~0.2 s at start). egress.py dials through it.

A callback URL comes from whoever holds an agent key, so it may name what only the runtime can reach: its own
loopback, the cloud's metadata service (169.254.169.254), the private network. Internal addresses are refused
unless the operator opened them (``--allow-private-callbacks CIDR``; ``axme dev`` on loopback also allows
loopback, where its agents run). ``check_callback_url`` refuses literal internal addresses and ``localhost`` at
create time; other names are checked when dialled (egress.py), since what they resolve to may change.
"""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from axme_cli.runtime.errors import Unprocessable

if TYPE_CHECKING:
    from axme_cli.runtime.settings import Settings

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_PRIVATE = tuple(ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_SHARED = ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598): neither private nor the internet
_NAT64 = ip_network("64:ff9b::/96")  # the IPv4 address is the last 32 bits, reached through a NAT64 gateway
_LOOPBACK = (ip_address("127.0.0.1"), ip_address("::1"))
# Forms of IPv4 that inet_aton (and so getaddrinfo) accepts but ipaddress does not: 127.1, 2130706433, 0x7f.1
_LEGACY_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")
HINT = "--allow-private-callbacks opens it"


class EgressRefused(OSError):
    """An outbound connection the policy refuses. An OSError, so aiohttp treats it as a failed connect (and
    tries the name's next address, if any) and never sends a byte."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)

    def __str__(self) -> str:
        return str(self.strerror)


def kind_of(ip: IPAddress) -> str | None:
    """What kind of internal address ``ip`` is ("loopback", "link-local", ...), or None for a global one.
    IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4, Teredo) are judged by that address too."""
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return kind_of(ip.ipv4_mapped)
        if ip in _NAT64:  # what DNS64 answers for an IPv4-only name on an IPv6-only network
            return kind_of(IPv4Address(int(ip) & 0xFFFFFFFF))
        carried = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if carried is not None and (kind := kind_of(carried)) is not None:
            return kind
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip in _SHARED:
        return "shared (CGNAT)"
    if any(ip in net for net in _PRIVATE) or (isinstance(ip, IPv6Address) and ip.is_site_local):
        return "private"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


@dataclass(frozen=True)
class Policy:
    """Which internal addresses outbound HTTP may reach: those in ``networks``, and loopback if ``loopback``."""

    networks: tuple[IPNetwork, ...] = ()
    loopback: bool = False

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(tuple(ip_network(n, strict=False) for n in settings.callback_networks),
                   settings.loopback_callbacks)

    def refusal(self, ip: IPAddress) -> str | None:
        """The kind of internal address ``ip`` is if this policy refuses it; None if it may be dialled."""
        plain = ip.ipv4_mapped if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None else ip
        if any(addr in net for net in self.networks for addr in (ip, plain)):
            return None
        kind = kind_of(ip)
        if kind == "loopback" and self.loopback:
            return None
        return kind

    def socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        """aiohttp's ``socket_factory``: every connection's socket is made here, for the address about to be
        dialled, so no code path connects to a refused one."""
        family, type_, proto, _, sockaddr = addr_info
        ip = ip_address(sockaddr[0])
        kind = self.refusal(ip)
        if kind is not None:
            raise EgressRefused(f"refused: {ip} is {article(kind)} {kind} address; {HINT}")
        return socket.socket(family, type_, proto)


def literal_ip(host: str) -> IPAddress | None:
    """The address a URL's host names literally (``[::1]`` without brackets, ``127.0.0.1``, and the old forms
    the system resolver also reads as IPv4: ``127.1``, ``2130706433``, ``0x7f.0.0.1``), else None."""
    try:
        return ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_callback_url(policy: Policy, url: str, field: str = "callback_url") -> None:
    """422 naming ``field`` when ``url``'s host is a literal address the policy refuses, or ``localhost``."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    message = None
    if host == "localhost" or host.endswith(".localhost"):
        if all(policy.refusal(ip) is not None for ip in _LOOPBACK):
            message = f"{field}: refused: {host} is a loopback address; {HINT}"
    elif (ip := literal_ip(host)) is not None and (kind := policy.refusal(ip)) is not None:
        message = f"{field}: refused: {ip} is {article(kind)} {kind} address; {HINT}"
    if message is not None:
        raise Unprocessable(message, code="callback_url_refused", details={"field": field})
