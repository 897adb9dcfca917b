"""Where a live-mode webhook may go: never to a private, loopback, link-local, multicast, reserved or unspecified
address, checked when an endpoint is created and again whenever a connection to it is opened.

The second check is what stops DNS rebinding: a hostname that resolved to a public address at creation can later
resolve to 127.0.0.1 or 169.254.169.254. Live-mode deliveries therefore go through ``GuardedBackend``, an httpcore
network backend that resolves the host itself when it opens a connection, refuses the connection if any address it
got is one of those, and connects the socket to an address it just checked, so nothing resolves the name a second
time. The URL keeps its hostname: the Host header, TLS SNI and the certificate check are the hostname's, and the
connection pool keys kept-alive connections by it (each was checked when it was opened).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[Address]]]

REFUSED = "private, loopback, link-local, multicast or reserved"


def blocked(address: Address) -> str | None:
    """What kind of address Kobo never sends live-mode webhooks to this is, or None when it may."""
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is 127.0.0.1
    if mapped is not None:
        address = mapped
    kinds = {
        "loopback": address.is_loopback,
        "link-local": address.is_link_local,
        "unspecified": address.is_unspecified,
        "multicast": address.is_multicast,
        "reserved": address.is_reserved,
        "private": address.is_private,
    }
    return next((kind for kind, found in kinds.items() if found), None)


async def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (itself when it is an address), in the resolver's order."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


class UnsafeTarget(httpcore.ConnectError):
    """A live-mode host that resolves to an address Kobo does not send to; the connection was never opened."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens a TCP connection only to an address it resolved and checked itself (see the module's docstring).

    ``resolver`` and ``refuse`` are the real ones unless a test gives others."""

    def __init__(self, resolver: Resolver = resolve, refuse: Callable[[Address], str | None] = blocked) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.resolver = resolver
        self.refuse = refuse

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.resolver(host, port)
        except OSError as error:
            raise httpcore.ConnectError(f"{host} does not resolve: {error}") from error
        for address in addresses:
            kind = self.refuse(address)
            if kind is not None:
                raise UnsafeTarget(f"{host} resolves to {address}, a {kind} address")
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve")
        failure: httpcore.ConnectError | None = None
        for address in addresses:  # each one checked above: trying the next is no second resolution
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as error:
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are sent over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_transport(
    tls: ssl.SSLContext | None = None, backend: GuardedBackend | None = None
) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (TLS verified against the hostname, environment ignored) on a ``GuardedBackend``.

    httpx 0.29 has no argument for httpcore's network backend, so its connection pool is replaced by one built
    like it (the default limits) with ours; tests/webhooks/test_targets.py fails if that stops working."""
    tls = tls or httpx.create_ssl_context(trust_env=False)
    transport = httpx.AsyncHTTPTransport(verify=tls, trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls,
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=backend or GuardedBackend(),
    )
    return transport
