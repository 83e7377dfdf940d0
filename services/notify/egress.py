"""Where webhooks may connect: public addresses, plus the private networks an operator allows
(`ACUVIM_NOTIFY_ALLOWED_NETWORKS`). Without this an operator account could make the console call
its own internals (SSRF): 127.0.0.1, the cloud metadata service at 169.254.169.254, 10/8,
fc00::/7, and so on.

Checked when a rule is saved (a clear 400 for the operator) and again at every connection a
webhook opens. The second check is the one that holds: the host is resolved once, every address
it resolves to must be allowed, and the connection goes to one of those very addresses, so a DNS
answer that changes between the check and the connection (DNS rebinding) changes nothing. TLS
still verifies the certificate against the URL's host name (httpcore's `server_hostname`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> every address the host resolves to.
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

# NAT64's well-known prefix (RFC 6052): an IPv6-only network reaches IPv4 host a.b.c.d there.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
DEFAULT_PORTS = {"http": 80, "https": 443}


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 host an IPv6 address stands for: IPv4-mapped, 6to4 or NAT64."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def non_public_kind(address: IPAddress) -> str | None:
    """What keeps an address off the Internet (loopback, private, ...); None for a public one.

    `is_global` alone is not enough: it is True for multicast and IPv6 site-local addresses."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return non_public_kind(inner)
        if address.is_site_local:
            return "site-local"
    for kind, matches in (("unspecified", address.is_unspecified),
                          ("loopback", address.is_loopback),
                          ("link-local", address.is_link_local),
                          ("multicast", address.is_multicast),
                          ("private", address.is_private),
                          ("reserved", address.is_reserved)):
        if matches:
            return kind
    return None if address.is_global else "not globally routable"


class RefusedAddress(Exception):
    """A webhook host resolves to an address it may not reach. The message (shown to the
    operator) names the kinds of address a host name resolves to, not the addresses: internal
    DNS answers stay internal; `refused` has them for the log."""

    def __init__(self, host: str, refused: list[tuple[IPAddress, str]], *,
                 literal: bool) -> None:
        self.refused = refused
        if literal:  # an IP address as the host
            what = f"webhook address {host} is {refused[0][1]}"
        else:
            kinds = " / ".join(dict.fromkeys(kind for _, kind in refused))
            what = f"webhook host {host} resolves to an address that is {kinds}"
        super().__init__(f"{what}: not a public address, and not in "
                         "ACUVIM_NOTIFY_ALLOWED_NETWORKS")


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address not in found:
            found.append(address)
    return found


class EgressPolicy:
    """Which addresses webhooks may reach, and the checked addresses of a host."""

    def __init__(self, allowed_networks: Iterable[Network] = (),
                 resolver: Resolver = system_resolver) -> None:
        self.allowed_networks = tuple(allowed_networks)
        self.resolver = resolver

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` may not be reached (its kind); None when it may."""
        kind = non_public_kind(address)
        if kind is None:
            return None
        inner = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        candidates = [address] if inner is None else [address, inner]
        allowed = any(a in network for a in candidates for network in self.allowed_networks)
        return None if allowed else kind

    async def addresses(self, host: str, port: int, timeout_s: float | None) -> list[IPAddress]:
        """Every address `host` resolves to, all allowed, else RefusedAddress. A name that
        does not resolve raises OSError (socket.gaierror), a slow one TimeoutError."""
        try:
            found: list[IPAddress] = [ipaddress.ip_address(host)]
            literal = True
        except ValueError:
            found = await asyncio.wait_for(self.resolver(host, port), timeout_s)
            literal = False
        refused = [(a, kind) for a in found if (kind := self.refusal(a)) is not None]
        if refused:
            raise RefusedAddress(host, refused, literal=literal)
        if not found:
            raise socket.gaierror(f"{host} resolves to no address")
        return found

    async def check_url(self, url: str, timeout_s: float) -> list[IPAddress]:
        """`addresses` of a URL's host, parsed as httpx (the sender) parses it."""
        parsed = httpx.URL(url)
        port = parsed.port or DEFAULT_PORTS.get(parsed.scheme, 443)
        return await self.addresses(parsed.raw_host.decode("ascii"), port, timeout_s)


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to checked addresses of the host."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.backend = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int,
                          timeout: float | None = None,  # noqa: ASYNC109 - httpcore's API
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            addresses = await self.policy.addresses(host, port, timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from None
        failure: Exception = httpcore.ConnectError(f"{host}: no address")
        for address in addresses:  # one after the other, within one connect timeout
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                return await self.backend.connect_tcp(str(address), port, left, local_address,
                                                      socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)


class CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (TLS, pooling, errors), its connections through CheckedBackend.

    httpx 0.29 cannot be given a network backend (encode/httpx#3749 proposes it), so the
    connection pool it built is replaced by the same pool with one; the tests of egress fail
    if an httpx release stops using it."""

    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=100,
            max_keepalive_connections=20, keepalive_expiry=5.0,
            network_backend=CheckedBackend(policy))
