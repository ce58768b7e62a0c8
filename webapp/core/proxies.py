"""Client addresses behind a proxy: X-Forwarded-For is believed only from the proxies we run."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.middleware.proxy_fix import ProxyFix

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> list[Network] | None:
    """Addresses or networks (``127.0.0.1``, ``10.0.0.0/8``); None for ``*`` (any peer)."""
    networks: list[Network] = []
    for raw in entries:
        entry = raw.strip()
        if entry == "*":
            return None
        if entry:
            networks.append(ipaddress.ip_network(entry, strict=False))
    return networks


class TrustedProxyFix:
    """ProxyFix for requests whose peer is one of ``trusted``; anyone else keeps the address
    it connected from. Without the check, a client that reaches gunicorn directly could
    choose the address its rate limits are counted under by sending X-Forwarded-For."""

    def __init__(self, app: WSGIApplication, hops: int, trusted: list[Network] | None) -> None:
        self.app = app
        self.fixed = ProxyFix(app, x_for=hops)
        self.trusted = trusted

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.trusted is None or _is_in(environ.get("REMOTE_ADDR", ""), self.trusted):
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)


def _is_in(address: str, networks: list[Network]) -> bool:
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:  # a Unix socket's peer has no address: the proxy on this machine
        return address == ""
    return any(peer in network for network in networks)
