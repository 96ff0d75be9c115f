"""The one seam every GitHub request goes through: authentication, retries, rate limits, write lock, counting.

Requests are sent with PyGithub's ``Requester.requestJson`` (its auth header handling, URL building, GHES
prefixes and logging with the token masked), configured so that it does nothing behind our back: no urllib3
retries and no ``seconds_between_writes`` delay. Every attempt is then visible here, so that:

- each attempt is reported to ``on_call("METHOD /template", status)`` (status 0 = no response at all);
- primary rate limits are honoured (``X-RateLimit-Remaining: 0`` → wait until ``X-RateLimit-Reset``) and so are
  secondary ones (403/429 with ``Retry-After``; without it GitHub asks for at least a minute), each wait
  bounded by ``max_rate_wait``, past which :class:`RateLimited` tells the caller when to come back;
- 5xx answers and broken connections are retried with exponential backoff (bounded; the sleep is injected so
  tests run instantly). A POST that creates content is only retried when the caller can ``confirm`` that the
  failed attempt did not land after all (GitHub may answer 502 after it created the object), so a retry
  never posts a review or comment twice. When no answer came at all (a timeout, a dropped connection),
  GitHub may still commit the write many seconds later, so ``confirm`` is asked again over
  :data:`CONFIRM_DELAYS` (half a minute) before the POST is sent again;
- a 401 drops the cached token (``TokenAuth.refresh``) and the request is sent once more with a fresh one; a
  second 401 is :class:`Unauthorized`. Errors retrying cannot cure (401, 404) are :class:`PermanentError`, so
  the job queue dead-letters them at once instead of retrying for minutes;
- content-changing requests of one installation are serialised by the write slot, held for one attempt only
  (never through a rate-limit wait or a backoff, which would stall every other job of the installation); a
  fixed pause between writes would cost the per-PR latency budget for no gain at a handful of writes per pull
  request, so none is added here (the deployment's coordinator may pace them).

https://docs.github.com/rest/using-the-rest-api/best-practices-for-using-the-rest-api
https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from github import Auth
from github.Requester import Requester

DEFAULT_API_URL = "https://api.github.com"
USER_AGENT = "atlas-bot"
API_VERSION = "2022-11-28"
TIMEOUT_SECONDS = 15
PER_PAGE = 100
MAX_ATTEMPTS = 4
BACKOFF_SECONDS = 0.5
MAX_RATE_WAIT_SECONDS = 60.0
# "If you exceed a secondary rate limit and no retry-after header is present, wait for at least one minute."
SECONDARY_WAIT_SECONDS = 60.0
# After a POST got no answer: look for it at once, then after these waits (31 s in all; every 8 s at the end,
# so a write committed 20 s late is found 23 s in). GitHub has been seen committing a write 20 s after the
# client gave up on it.
CONFIRM_DELAYS = (1.0, 2.0, 4.0, 8.0, 8.0, 8.0)
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
RATE_LIMIT_STATUSES = frozenset({403, 429})
NO_RESPONSE = 0
GRAPHQL_ENDPOINT = "POST /graphql"
READ_METHODS = frozenset({"GET", "HEAD"})

_TRANSIENT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_PLACEHOLDER_RE = re.compile(r"\{(\w+)\}")
_NEXT_LINK_RE = re.compile(r'<([^>]+)>;\s*rel="next"')
# Path parameters that may contain "/" (a file path inside the repository).
_SLASHED_PARAMS = frozenset({"path"})

log = logging.getLogger(__name__)

OnCall = Callable[[str, int], None]


class PermanentError(Exception):
    """A job failure that retrying cannot cure (the worker dead-letters it at once, with the reason)."""


class GitHubError(Exception):
    """GitHub answered an error (``status``) or could not be reached (``status`` None) on ``endpoint``."""

    def __init__(self, message: str, *, status: int | None, endpoint: str, data: Any = None) -> None:
        super().__init__(f"{endpoint}: {status or 'no response'}: {message}")
        self.status = status
        self.endpoint = endpoint
        self.data = data

    @property
    def error_codes(self) -> frozenset[str]:
        """The ``errors[].code`` values of a 422 answer (``already_exists``, ``invalid``, ...)."""
        errors = self.data.get("errors") if isinstance(self.data, dict) else None
        return frozenset(e.get("code", "") for e in errors or () if isinstance(e, dict))


class NotFound(GitHubError, PermanentError):
    """404: the object does not exist, or the installation cannot see it."""


class Unauthorized(GitHubError, PermanentError):
    """401 even with a fresh token: the installation was removed or its access revoked."""


class RateLimited(GitHubError):
    """A rate limit asks for a longer wait than the caller allows; retry after ``retry_at`` (epoch seconds)."""

    def __init__(self, message: str, *, status: int | None, endpoint: str, retry_at: float) -> None:
        super().__init__(message, status=status, endpoint=endpoint)
        self.retry_at = retry_at


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    data: Any


@dataclass
class Tally:
    """Calls made by one thread inside :meth:`Transport.tally` (each attempt counts, retries included).

    Every non-GET request is a write: the bot's only GraphQL requests are mutations.
    """

    reads: int = 0
    writes: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)

    def add(self, endpoint: str, status: int) -> None:
        if endpoint.split(" ", 1)[0] in READ_METHODS:
            self.reads += 1
        else:
            self.writes += 1
        self.by_endpoint[f"{endpoint} {status}"] += 1


class TokenAuth(Auth.Auth):
    """PyGithub auth that asks ``provider`` for the token on every request (it caches and refreshes).

    ``drop(token)`` forgets a token GitHub refused, so that the provider's next answer is a fresh one.
    """

    def __init__(self, provider: Callable[[], str], drop: Callable[[str], None] | None = None) -> None:
        self._provider = provider
        self._drop = drop
        self._last: str | None = None

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        self._last = self._provider()
        return self._last

    def refresh(self) -> bool:
        """GitHub answered 401 to the last token: drop it; False when there is nothing to drop."""
        if self._drop is None or self._last is None:
            return False
        self._drop(self._last)
        self._last = None
        return True


class Transport:
    """Sends requests for one client; not shared between threads (PyGithub's connection object is not)."""

    def __init__(
        self,
        auth: Auth.Auth,
        api_url: str = DEFAULT_API_URL,
        *,
        on_call: OnCall | None = None,
        write_lock: AbstractContextManager[Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        max_attempts: int = MAX_ATTEMPTS,
        backoff: float = BACKOFF_SECONDS,
        max_rate_wait: float = MAX_RATE_WAIT_SECONDS,
        timeout: int = TIMEOUT_SECONDS,
    ) -> None:
        self._auth = auth
        self._requester = Requester(
            auth=auth,
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            user_agent=USER_AGENT,
            per_page=PER_PAGE,
            verify=True,
            retry=0,  # every attempt goes through the loop below, counted and with an injectable sleep
            pool_size=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            api_version=API_VERSION,
        )
        self._on_call = on_call
        self._write_lock = write_lock or threading.Lock()
        self._sleep = sleep
        self._clock = clock
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_rate_wait = max_rate_wait
        # resource ("core", "graphql", ...) → (remaining, reset epoch) from the latest answer.
        self._limits: dict[str, tuple[int, float]] = {}
        self._tallies = threading.local()

    @property
    def graphql_url(self) -> str:
        return self._requester.graphql_url

    @property
    def rate_limit_remaining(self) -> int | None:
        """``X-RateLimit-Remaining`` of the REST ("core") budget in the latest answer, if any came."""
        core = self._limits.get("core")
        return core[0] if core else None

    @contextmanager
    def tally(self) -> Iterator[Tally]:
        """Count the calls this thread makes inside the block."""
        stack: list[Tally] = self._tallies.__dict__.setdefault("stack", [])
        tally = Tally()
        stack.append(tally)
        try:
            yield tally
        finally:
            stack.remove(tally)

    # ------------------------------------------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        template: str,
        params: Mapping[str, Any] | None = None,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool | None = None,
        confirm: Callable[[], Any] | None = None,
        url: str | None = None,
        endpoint: str | None = None,
    ) -> Response:
        """Send ``method template`` (placeholders filled from ``params``) and return the decoded answer.

        ``idempotent`` defaults to True for every method but POST; a non-idempotent request is retried after a
        5xx or a broken connection only when ``confirm()`` (called first, and after no answer at all again over
        :data:`CONFIRM_DELAYS`) returns None, i.e. the earlier attempt did not create anything; when it returns
        a value, that value is the answer. ``url`` (a pagination
        link) replaces the expanded template; ``endpoint`` names the call for counting.
        """
        method = method.upper()
        endpoint = endpoint or f"{method} {template}"
        target = url or expand(template, params or {})
        if idempotent is None:
            idempotent = method != "POST"
        resource = "graphql" if endpoint == GRAPHQL_ENDPOINT else "core"
        lock = nullcontext() if method in READ_METHODS else self._write_lock
        failures = rate_waits = 0
        refreshed = False
        while True:
            self._wait_for_reset(resource, endpoint)
            broken: Exception | None = None
            # The write slot covers this one attempt; every wait below happens outside it.
            with lock:
                try:
                    status, headers, raw = self._requester.requestJson(method, target, dict(query or {}), None, body)
                except _TRANSIENT_ERRORS as exc:
                    status, headers, raw, broken = NO_RESPONSE, {}, None, exc
            self._report(endpoint, status)
            self._note_limits(resource, headers)
            data = _decode(raw)
            if broken is None and status < 400:
                return Response(status, headers, data)

            if status == 401 and not refreshed and self._refresh_auth():
                # A revoked or rotated token: a 401 changed nothing on GitHub, so sending again is safe.
                refreshed = True
                log.warning("GitHub %s: 401, retrying once with a fresh token", endpoint)
                continue

            wait = self._rate_limit_wait(status, headers, data, rate_waits)
            if wait is not None:
                rate_waits += 1
                if wait > self._max_rate_wait or rate_waits > self._max_attempts:
                    raise RateLimited(_message(data), status=status, endpoint=endpoint,
                                      retry_at=self._clock() + wait)
                log.warning("GitHub %s: rate limited (%d), waiting %.0f s", endpoint, status, wait)
                self._sleep(wait)
                self._limits.pop(resource, None)  # waited for it; the next answer tells the new budget
                continue

            transient = broken is not None or status in RETRYABLE_STATUSES
            failures += 1
            if not transient or failures >= self._max_attempts or not (idempotent or confirm):
                raise _error(endpoint, status, data, broken)
            log.warning("GitHub %s: %s, attempt %d", endpoint, broken or status, failures)
            if confirm is not None:
                found = self._confirm(confirm, endpoint, patient=broken is not None)
                if found is not None:
                    return Response(status, headers, found)
            self._sleep(self._backoff * 2 ** (failures - 1))

    def _confirm(self, confirm: Callable[[], Any], endpoint: str, *, patient: bool) -> Any:
        """What ``confirm()`` finds of a failed write: asked at once and, when no answer came at all (the
        write may still be committed late), again after each of :data:`CONFIRM_DELAYS`."""
        found = confirm()
        for delay in CONFIRM_DELAYS if patient else ():
            if found is not None:
                break
            log.info("GitHub %s: no answer; looking again for the write in %.0f s", endpoint, delay)
            self._sleep(delay)
            found = confirm()
        return found

    def _refresh_auth(self) -> bool:
        refresh = getattr(self._auth, "refresh", None)
        return bool(refresh()) if callable(refresh) else False

    def paginate(
        self,
        template: str,
        params: Mapping[str, Any] | None = None,
        *,
        query: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> list[Any]:
        """Every item of a listing, following ``Link: rel="next"`` to the last page (``key`` picks the list
        out of an object). A partial listing would make the bot take a posted review for missing and post it
        again, so no page is skipped; a next link seen before (a loop) is the only stop."""
        items: list[Any] = []
        url: str | None = None
        seen: set[str] = set()
        first_query = {"per_page": PER_PAGE, **(query or {})}
        while True:
            # A next link already carries the query; only the first page is built from the template.
            answer = self.request("GET", template, params, query=None if url else first_query, url=url)
            page = answer.data.get(key, []) if key else answer.data
            items.extend(page or [])
            match = _NEXT_LINK_RE.search(answer.headers.get("link", ""))
            if match is None or match.group(1) in seen:
                return items
            url = match.group(1)
            seen.add(url)

    def graphql(self, query: str, variables: Mapping[str, Any], *, idempotent: bool = True) -> dict[str, Any]:
        """POST a GraphQL document; returns the whole answer (``data`` and, on partial failure, ``errors``)."""
        answer = self.request("POST", "/graphql", url=self.graphql_url, endpoint=GRAPHQL_ENDPOINT,
                              body={"query": query, "variables": dict(variables)}, idempotent=idempotent)
        return answer.data if isinstance(answer.data, dict) else {}

    # --------------------------------------------------------------------------------------------- internals

    def _report(self, endpoint: str, status: int) -> None:
        for tally in getattr(self._tallies, "stack", ()):
            tally.add(endpoint, status)
        if self._on_call is not None:
            self._on_call(endpoint, status)

    def _note_limits(self, resource: str, headers: Mapping[str, str]) -> None:
        remaining, reset = headers.get("x-ratelimit-remaining"), headers.get("x-ratelimit-reset")
        if remaining is None or reset is None:
            return
        answered = headers.get("x-ratelimit-resource", resource)
        self._limits[answered] = (int(float(remaining)), float(reset))

    def _wait_for_reset(self, resource: str, endpoint: str) -> None:
        """Before sending: when the budget is known to be spent, wait for its reset (or give up)."""
        remaining, reset = self._limits.get(resource, (1, 0.0))
        wait = reset - self._clock() + 1
        if remaining > 0 or wait <= 0:
            return
        if wait > self._max_rate_wait:
            raise RateLimited("rate limit budget spent", status=None, endpoint=endpoint, retry_at=reset + 1)
        log.warning("GitHub rate limit spent, waiting %.0f s before %s", wait, endpoint)
        self._sleep(wait)
        self._limits.pop(resource, None)

    def _rate_limit_wait(self, status: int, headers: Mapping[str, str], data: Any, waits: int) -> float | None:
        """Seconds to wait when the error is a rate limit, None when it is not one."""
        if status not in RATE_LIMIT_STATUSES:
            return None
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            return max(float(retry_after), 0.0)
        if headers.get("x-ratelimit-remaining") == "0":
            return max(float(headers.get("x-ratelimit-reset", 0)) - self._clock() + 1, 1.0)
        message = _message(data)
        if status == 429 or Requester.isSecondaryRateLimitError(message) or Requester.isPrimaryRateLimitError(message):
            return SECONDARY_WAIT_SECONDS * 2 ** waits
        return None


def expand(template: str, params: Mapping[str, Any]) -> str:
    """``/repos/{owner}/{repo}`` with each placeholder percent-encoded (``path`` keeps its slashes)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return quote(str(params[name]), safe="/" if name in _SLASHED_PARAMS else "")

    return _PLACEHOLDER_RE.sub(value, template)


def _error(endpoint: str, status: int, data: Any, broken: Exception | None) -> GitHubError:
    if broken is not None:
        error = GitHubError(f"connection failed: {broken}", status=None, endpoint=endpoint)
        error.__cause__ = broken
        return error
    kind = {404: NotFound, 401: Unauthorized}.get(status, GitHubError)
    return kind(_message(data), status=status, endpoint=endpoint, data=data)


def _decode(raw: Any) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def _message(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("message") or data)
    return str(data or "")
