"""Connection-level limits of the webhook server, so unauthenticated clients cannot hold its sockets or memory.

uvicorn bounds concurrent connections (``limit_concurrency``: past it, new requests get 503 at once) and idle
keep-alive connections, but it has no deadline for a request's headers: a client that opens a connection and
sends nothing, or trickles a header byte every few seconds, holds a connection slot for as long as it likes.
:class:`HeaderDeadlineProtocol` closes such a connection when its request headers are not complete within a
deadline. The body's own deadline and the cap on bodies read before their signature is checked live in the
``/webhook`` endpoint (``bot.app``), where the request is known.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.settings import Settings

# Idle keep-alive connections are closed after this; GitHub opens a new connection per delivery anyway.
KEEP_ALIVE_SECONDS = 5

log = logging.getLogger(__name__)


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers (from connect, or the last response)."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def handle_events(self) -> None:
        super().handle_events()
        if self._request_in_progress():
            self._cancel_header_deadline()

    def on_response_complete(self) -> None:
        # Armed before the base class handles a pipelined request, which cancels it again in handle_events.
        self._arm_header_deadline()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _request_in_progress(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self._header_timeout, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or self._request_in_progress():
            return
        log.info("closed a connection that sent no complete request headers within %.0f s", self._header_timeout)
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` that bound connections, idle sockets and header reads."""
    return {
        "http": functools.partial(HeaderDeadlineProtocol, header_timeout=settings.header_timeout_seconds),
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }
