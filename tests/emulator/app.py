"""The emulator's HTTP face: one FastAPI route per handled operation, every exchange refereed by the spec.

Per request: queued fault → authentication → request validation → handler → response validation → record.
A request or answer that does not match GitHub's OpenAPI description is answered 500 with the reason and kept
in ``state.validation_errors``; the test fixture fails the test on it, so a mismatch cannot go unnoticed.
Deliberate faults, authentication failures and error statuses the description does not list for an
operation (GitHub documents few of its 401/422s) are outside the description and are not validated; nor is
GraphQL, which the REST description does not cover (handlers.graphql accepts one exact document shape).
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .handlers import ACCESS_TOKENS, APP, HANDLERS, ApiError, Call, Handler, Result, check_app_jwt, graphql
from .state import (
    BAD_GATEWAY,
    BAD_GATEWAY_AFTER_WRITE,
    CONNECTION_CLOSE,
    LATE_WRITE,
    NOT_FOUND,
    PRIMARY_RATE_LIMIT,
    RATE_LIMIT,
    SECONDARY_RATE_LIMIT,
    Fault,
    RecordedRequest,
    State,
)

GRAPHQL = "/graphql"
JSON = "application/json; charset=utf-8"
FAULT_ANSWERS: dict[str, tuple[int, str]] = {
    BAD_GATEWAY: (502, "Server Error"),
    BAD_GATEWAY_AFTER_WRITE: (502, "Server Error"),
    SECONDARY_RATE_LIMIT: (403, "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                                "try again."),
    PRIMARY_RATE_LIMIT: (403, "API rate limit exceeded for installation ID 1."),
    NOT_FOUND: (404, "Not Found"),
}


class StateHolder:
    """The state the server answers from; the fixture swaps in a fresh one for every test."""

    def __init__(self, state: State) -> None:
        self.current = state


class BrokenResponse(Response):
    """Starts an answer and drops the connection: the client sees a connection error mid-response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b'{"partial": ', "more_body": True})
        raise ConnectionAbortedError("emulated connection drop")


def create_app(holder: StateHolder) -> FastAPI:
    app = FastAPI(title="GitHub REST API emulator", openapi_url=None, docs_url=None, redoc_url=None)
    for (method, template), handler in sorted(HANDLERS.items()):
        app.add_api_route(template.replace("{path}", "{path:path}"), _endpoint(holder, method, template, handler),
                          methods=[method])
    app.add_api_route(GRAPHQL, _endpoint(holder, "POST", GRAPHQL, graphql, validate=False), methods=["POST"])
    return app


def _endpoint(holder: StateHolder, method: str, template: str, handler: Handler, *,
              validate: bool = True) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        exchange = Exchange(holder.current, method, template, request.url.path, dict(request.path_params),
                            list(request.query_params.multi_items()), raw, request.headers, validate)
        return await run_in_threadpool(exchange.serve, handler)

    endpoint.__name__ = f"{method.lower()}_{template}"
    return endpoint


class Exchange:
    """One request and its answer."""

    def __init__(self, state: State, method: str, template: str, path: str, params: dict[str, str],
                 query: list[tuple[str, str]], raw: bytes, headers: Mapping[str, str], validate: bool) -> None:
        self.state, self.method, self.template, self.path = state, method, template, path
        self.params, self.query, self.raw, self.headers, self.validate = params, query, raw, headers, validate
        self.endpoint = f"{method} {template}"
        self.body: Any = None

    def serve(self, handler: Handler) -> Response:
        try:
            self.body = json.loads(self.raw) if self.raw else None
        except ValueError:
            return self._answer(Result(400, {"message": "Problems parsing JSON", "documentation_url": ""}))
        fault = self.state.take_fault(self.endpoint)
        if fault is not None and fault.kind == LATE_WRITE:
            timer = threading.Timer(fault.delay, self._commit_late, args=(handler,))
            timer.daemon = True
            timer.start()
            return self._fault(fault)
        if fault is not None and fault.kind != BAD_GATEWAY_AFTER_WRITE:
            return self._fault(fault)
        with self.state.lock:
            result = self._handle(handler)
        if fault is not None:
            return self._fault(fault)
        return self._answer(result)

    def _commit_late(self, handler: Handler) -> None:
        # Recorded once already, as the request whose answer never came.
        with self.state.lock:
            self._handle(handler)

    def _handle(self, handler: Handler) -> Result:
        spec = self.state.spec
        try:
            actor = self._authenticate()
            if self.validate:
                content_type = self.headers.get("content-type", "application/json").split(";")[0]
                errors = spec.request_errors(self.method, self.template, self.path, self.params, self.query,
                                             self.raw, content_type)
                if errors:
                    return self._invalid("request", errors)
            return handler(Call(self.state, self.method, self.template, self.path, self.params, self.query,
                                self.body, actor))
        except ApiError as exc:
            return Result(exc.status, exc.body())
        except ValueError as exc:
            return self._invalid("request", [str(exc)])
        except Exception:  # an emulator bug must fail the test, not pass for a retryable 500
            self.state.validation_errors.append(f"{self.endpoint}: emulator error\n{traceback.format_exc()}")
            return Result(500, {"message": "emulator error", "documentation_url": ""}, {"x-emulator-invalid": "bug"})

    def _authenticate(self) -> str:
        authorization = self.headers.get("authorization", "")
        if self.template == ACCESS_TOKENS:
            check_app_jwt(self.state, authorization)
            return self.state.bot["login"]
        if self.template == APP:
            return str(check_app_jwt(self.state, authorization))  # the acting App's id
        _, _, token = authorization.partition(" ")
        known = self.state.tokens.get(token)
        if known is None or known.expires_at <= time.time():
            raise ApiError(401, "Bad credentials")
        return known.user

    def _invalid(self, what: str, errors: list[str]) -> Result:
        reason = f"{self.endpoint}: {what} does not match GitHub's OpenAPI description:\n" + "\n".join(errors)
        self.state.validation_errors.append(reason)
        return Result(500, {"message": f"emulator: {reason}", "documentation_url": ""}, {"x-emulator-invalid": what})

    def _answer(self, result: Result) -> Response:
        payload = b"" if result.data is None else json.dumps(result.data).encode()
        if self.validate and self._documented(result.status) and "x-emulator-invalid" not in result.headers:
            errors = self.state.spec.response_errors(self.method, self.template, self.path, self.params, self.query,
                                                     result.status, payload)
            if errors:
                result = self._invalid("response", errors)
                payload = json.dumps(result.data).encode()
        self._record(result.status)
        headers = {**self._rate_headers(), **result.headers}
        return Response(payload, status_code=result.status, headers=headers,
                        media_type=JSON if payload else None)

    def _documented(self, status: int) -> bool:
        responses = self.state.spec.raw["paths"][self.template][self.method.lower()]["responses"]
        return status < 400 or str(status) in responses or "default" in responses

    def _fault(self, fault: Fault) -> Response:
        no_answer = fault.kind in (CONNECTION_CLOSE, LATE_WRITE)
        self._record(0 if no_answer else FAULT_ANSWERS[fault.kind][0], fault.kind)
        if no_answer:
            return BrokenResponse()
        status, message = FAULT_ANSWERS[fault.kind]
        headers = self._rate_headers()
        if fault.kind == SECONDARY_RATE_LIMIT:
            headers["retry-after"] = str(fault.retry_after)
        elif fault.kind == PRIMARY_RATE_LIMIT:
            headers.update({"x-ratelimit-remaining": "0", "x-ratelimit-used": str(RATE_LIMIT),
                            "x-ratelimit-reset": str(int(time.time()) + fault.retry_after)})
        body = json.dumps({"message": message, "documentation_url": "https://docs.github.com/rest"}).encode()
        return Response(body, status_code=status, headers=headers, media_type=JSON)

    def _rate_headers(self) -> dict[str, str]:
        with self.state.lock:
            self.state.rate_remaining = max(self.state.rate_remaining - 1, 1)
            remaining = self.state.rate_remaining
        return {"x-ratelimit-limit": str(RATE_LIMIT), "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-used": str(RATE_LIMIT - remaining), "x-ratelimit-reset": str(int(time.time()) + 3600),
                "x-ratelimit-resource": "graphql" if self.template == GRAPHQL else "core"}

    def _record(self, status: int, fault: str | None = None) -> None:
        query = {key: value for key, value in self.query}
        self.state.record(RecordedRequest(self.method, self.path, self.endpoint, query, self.body, status, fault))
