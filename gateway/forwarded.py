"""Who the client is, and whether it came over TLS, behind a trusted proxy.

A TLS-terminating ingress or load balancer connects to the gateway itself: the
peer address is the proxy's and the scheme is plain HTTP. Such a proxy reports
the original client in ``X-Forwarded-For`` and the scheme in
``X-Forwarded-Proto``. Anyone can send those headers, so they are read only
when the peer is one of the configured trusted proxies
(``ABGATE_TRUSTED_PROXIES``), and from the right: each proxy appends the
address it saw, so the client is the rightmost address that is not itself a
trusted proxy; what lies to its left was written by the client and is ignored.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["TrustedProxies", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDRs (``10.0.0.0/8``, ``::1``) as networks; ValueError names a bad one."""
    networks = []
    for value in values:
        text = value.strip()
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not an IP address or CIDR network") from exc
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 peer on a dual-stack socket reads ::ffff:a.b.c.d.
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else value


class TrustedProxies:
    """The proxies whose ``X-Forwarded-For``/``-Proto`` headers are believed (none by default)."""

    __slots__ = ("networks",)

    def __init__(self, networks: Iterable[str | Network] = ()) -> None:
        self.networks = tuple(
            n if not isinstance(n, str) else parse_networks([n])[0] for n in networks
        )

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str | None) -> bool:
        """Whether ``host`` (an address, as a socket reports it) is a trusted proxy."""
        if not self.networks or not host:
            return False
        address = _address(host)
        return address is not None and any(address in network for network in self.networks)

    def client(self, peer: str | None, forwarded_for: str | bytes | None) -> str | None:
        """The client's address: the peer's, unless the peer is a trusted proxy and says
        otherwise in ``X-Forwarded-For`` (the rightmost hop that is not a trusted proxy)."""
        if not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in _text(forwarded_for).split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # garbage from here leftwards: nothing further is believable
            if not self.trusts(str(address)):
                return str(address)
            peer = str(address)  # one more trusted proxy: keep walking left
        return peer

    def scheme(self, peer: str | None, forwarded_proto: str | bytes | None, own: str) -> str:
        """``https`` when the gateway itself is on TLS, or a trusted proxy says the client
        used it (the last value: what the proxy next to the gateway set); else ``own``."""
        if own == "https" or not self.trusts(peer):
            return own
        values = [v.strip().lower() for v in _text(forwarded_proto).split(",") if v.strip()]
        if values and values[-1] in ("http", "https"):
            return values[-1]
        return own
