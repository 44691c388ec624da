"""What the hot path needs from the world outside the process, as interfaces.

Two edges: the upstream (a model server's endpoint, ``gateway/upstream.py``'s
``EndpointPool``) and the store feedback is joined in (``core/store.py``'s
``AsyncStore``). The hot path is typed against these, not against the
classes, so a test wires it to in-memory doubles through
``gateway.hotpath.create_hot_path``. Only what the hot path calls is named here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from core.store import FeedbackItem, FeedbackResult
from gateway.upstream import UpstreamResponse

__all__ = ["FeedbackStore", "Upstream", "UpstreamFactory"]


class Upstream(Protocol):
    """One endpoint of a variant's model server (``EndpointPool`` in production)."""

    @property
    def url(self) -> str:
        """The endpoint's URL, as configured (for logs)."""
        ...

    @property
    def base_path(self) -> bytes:
        """The URL's path, prepended to the paths of other protocols than abgate's."""
        ...

    @property
    def healthy(self) -> bool:
        """False while the endpoint is ejected after consecutive failures."""
        ...

    async def request(
        self,
        path: bytes,
        body: bytes,
        headers: bytes,
        timeout_s: float,
        method: bytes = b"POST",
        content_type: bytes = b"application/json",
    ) -> UpstreamResponse:
        """Send ``body`` to ``path`` with ``headers`` (pre-encoded header lines).

        Raises ``UpstreamError`` (kind ``timeout``, ``connect_error`` or ``protocol``)
        when no HTTP answer came back within ``timeout_s``.
        """
        ...

    def note(self, ok: bool) -> None:
        """One call's outcome made elsewhere (a shadow call made by the shadow caller
        process): failures in a row eject the endpoint, as its own calls' do."""
        ...

    def close(self) -> None:
        """Close idle connections (the gateway is stopping)."""
        ...


UpstreamFactory = Callable[[str], Upstream]
"""Makes the ``Upstream`` of one endpoint URL (``EndpointPool`` in production)."""


class FeedbackStore(Protocol):
    """Where feedback is joined to its request's variant (``AsyncStore`` in production)."""

    async def feedback(self, name: str, item: FeedbackItem, *, park: bool) -> FeedbackResult:
        """Count, park or refuse one feedback in experiment ``name``.

        Raises ``RedisUnavailable`` when the store does not answer: the item may then
        have been counted or not, and the same item (same token) may be sent again.
        """
        ...
