"""Where the variants' servers are and what they speak: the protocol and endpoint URLs."""

from __future__ import annotations

import contextvars
import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from experiments.problems import problem

__all__ = [
    "EXPERIMENT_PROTOCOL",
    "NAMED_MODEL_PROTOCOLS",
    "Endpoint",
    "Protocol",
    "endpoint_path",
]

# What the variants' servers speak, and so what clients send (docs/model-servers.md).
Protocol = Literal["abgate", "kserve-v1", "open-inference-v2", "mlflow"]
# Protocols whose paths name the model: a variant may give its name on its server.
NAMED_MODEL_PROTOCOLS = ("kserve-v1", "open-inference-v2")

_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _check_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        pass
    else:
        return True
    labels = host.lower().split(".")
    # A name of digits and dots only that is no IPv4 address is a typo, not a host.
    if all(label.isdigit() for label in labels):
        return False
    return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


# The protocol of the experiment being validated, for its endpoints' field checks (set
# around ExperimentConfig's validation; None: a variant checked on its own).
EXPERIMENT_PROTOCOL: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "protocol", default=None
)
_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+")


def _check_endpoint(url: str) -> str:
    """A server base URL: ``http(s)://host[:port][/base/path]``, without a trailing slash.

    The gateway appends the protocol's own path, so a query, fragment or
    credentials here would be silently dropped or misused: reject them. A
    base path (a server behind an ingress prefix) is checked against the
    experiment's protocol once it is known (abgate's own workers take none).
    """
    expected = "expected http://host[:port] or https://host[:port]"
    if any(c.isspace() or not c.isprintable() for c in url) or "\\" in url:
        raise problem(f"{expected}; got {url!r} (contains whitespace or a backslash)")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise problem(f"{expected}; got {url!r}")
    rest = rest.rstrip("/")
    for char, what in (
        ("@", "credentials are"),
        ("?", "a query is"),
        ("#", "a fragment is"),
    ):
        if char in rest:
            raise problem(f"{expected}; got {url!r} ({what} not allowed here)")
    rest, slash, path = rest.partition("/")
    if slash and EXPERIMENT_PROTOCOL.get() == "abgate":
        raise problem(
            f"{expected}; got {url!r} (a path is not allowed with protocol abgate: the "
            "gateway appends /predict; the other protocols take a base path)"
        )
    if slash and not _BASE_PATH.fullmatch("/" + path):
        raise problem(f"{expected}[/base/path]; got {url!r} (bad path)")
    host, port = rest, ""
    if rest.startswith("["):
        close = rest.find("]")
        host, port = rest[: close + 1], rest[close + 1 :]
        if close < 0 or (port and not port.startswith(":")):
            raise problem(f"{expected}; got {url!r} (bad IPv6 address)")
        port = port[1:]
    elif ":" in rest:
        host, _, port = rest.rpartition(":")
    if not host or not _check_host(host):
        raise problem(f"{expected}; got {url!r} (bad host {host!r})")
    if ":" in rest.removeprefix(host) and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise problem(f"{expected}; got {url!r} (port must be 1..65535)")
    return f"{scheme}://{rest}{slash}{path}"


def endpoint_path(url: str) -> str:
    """The base path of a validated endpoint URL ("" when it has none)."""
    _, _, rest = url.partition("://")
    _, slash, path = rest.partition("/")
    return slash + path


Endpoint = Annotated[str, Field(max_length=2048), AfterValidator(_check_endpoint)]
