"""Who may reach the token-protected surfaces (admin API, dashboard) of a gateway.

Without ``ABGATE_ADMIN_TOKEN`` the admin API is off (403) on every address. A
gateway bound to a non-loopback address without a token still starts, because
routing must work behind a Kubernetes Service (bound to 0.0.0.0) whether or
not anyone administers it there, and refusing to start would push operators
towards a throw-away token; it warns at start-up instead. Anything else that
would be open without a token (a dashboard, say) is open on loopback only.
"""

from __future__ import annotations

import ipaddress

from core.settings import Settings

__all__ = ["exposure_warning", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or name) is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def exposure_warning(settings: Settings) -> str | None:
    """The start-up warning for a gateway bound to ``settings.host``, if one is due."""
    if settings.admin_token or is_loopback(settings.host):
        return None
    return (
        f"bound to {settings.host} without ABGATE_ADMIN_TOKEN: the admin API is off (403); "
        "set ABGATE_ADMIN_TOKEN to turn it on"
    )
