"""GitHub's REST OpenAPI description (the trimmed copy in openapi/) as the emulator's referee.

Every request the bot sends and every answer the emulator gives is checked against it with openapi-core, so
the emulator cannot drift into accepting or returning what GitHub would not. Answers are also built from it:
:meth:`Spec.skeleton` fills a schema's required fields with neutral values, and the emulator overlays the
values that carry meaning (ids, bodies, shas, states), so every object has GitHub's full shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.testing import MockRequest, MockResponse

SPEC_PATH = Path(__file__).resolve().parent / "openapi" / "github-rest-trimmed.json"
# openapi-core matches request URLs against the servers list; the emulator's real port varies per run.
VALIDATION_HOST = "http://emulator.invalid"
PLACEHOLDER_TIME = "2024-01-01T00:00:00Z"
PLACEHOLDER_URL = "https://github.invalid/placeholder"
# Validation messages quote the offending value; keep them readable when it is a large payload.
MESSAGE_LIMIT = 400


class Spec:
    """The trimmed description: operations, validation, skeleton objects."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        self.raw: dict[str, Any] = json.loads(path.read_text())
        self.source: str = self.raw["info"]["x-source"]
        self._openapi = OpenAPI.from_dict({**self.raw, "servers": [{"url": VALIDATION_HOST}]})

    def operations(self) -> set[tuple[str, str]]:
        """(METHOD, path template) of every operation in the copy."""
        return {(method.upper(), path) for path, item in self.raw["paths"].items()
                for method in item if method != "parameters"}

    # ------------------------------------------------------------------------------------------ validation

    def _request(self, method: str, template: str, path: str, params: dict[str, str],
                 query: Iterable[tuple[str, str]], body: bytes, content_type: str) -> MockRequest:
        return MockRequest(VALIDATION_HOST, method, path, path_pattern=template, view_args=params,
                           args=list(query), data=body or None, content_type=content_type)  # type: ignore[arg-type]

    def request_errors(self, method: str, template: str, path: str, params: dict[str, str],
                       query: Iterable[tuple[str, str]], body: bytes, content_type: str) -> list[str]:
        request = self._request(method, template, path, params, query, body, content_type)
        return [_describe(error) for error in self._openapi.iter_request_errors(request)]

    def response_errors(self, method: str, template: str, path: str, params: dict[str, str],
                        query: Iterable[tuple[str, str]], status: int, body: bytes) -> list[str]:
        request = self._request(method, template, path, params, query, b"", "application/json")
        response = MockResponse(body, status_code=status, content_type="application/json")
        return [_describe(error) for error in self._openapi.iter_response_errors(request, response)]

    # ------------------------------------------------------------------------------------------- skeletons

    def schema(self, name: str) -> dict[str, Any]:
        return self.raw["components"]["schemas"][name]

    def response_schema(self, method: str, template: str, status: int) -> dict[str, Any]:
        response = self.raw["paths"][template][method.lower()]["responses"][str(status)]
        response = self._resolve(response)
        return response["content"]["application/json"]["schema"]

    def skeleton(self, schema: dict[str, Any] | str, **overlay: Any) -> Any:
        """A value valid for ``schema`` (a component name or a schema) with ``overlay`` merged in."""
        # With an overlay the caller wants the object itself, even where the schema also allows null.
        value = self._fill(self.schema(schema) if isinstance(schema, str) else schema, nullable=not overlay)
        if overlay:
            value = merge(value, overlay)
        return value

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            _, section, kind, name = node["$ref"].split("/", 3)
            node = self.raw[section][kind][name]
        return node

    def _fill(self, schema: dict[str, Any], *, nullable: bool = True) -> Any:
        schema = self._resolve(schema)
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged = merge(merged, self._fill(part, nullable=nullable))
            return merged
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return self._fill(schema[key][0], nullable=nullable)
        if nullable and schema.get("nullable"):
            return None
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            properties = schema.get("properties", {})
            return {name: self._fill(properties.get(name, {})) for name in schema.get("required", ())}
        if kind == "array":
            return []
        if kind == "string":
            return {"date-time": PLACEHOLDER_TIME, "uri": PLACEHOLDER_URL, "email": "octocat@github.invalid",
                    "uri-template": PLACEHOLDER_URL}.get(schema.get("format", ""), "")
        if kind in ("integer", "number"):
            return 0
        if kind == "boolean":
            return False
        return None


def merge(base: Any, overlay: Any) -> Any:
    """``overlay`` over ``base``: dictionaries merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = merge(base.get(key), value)
        return merged
    return overlay


def _describe(error: OpenAPIError) -> str:
    """openapi-core's message plus the schema errors behind it (they name the offending field)."""
    parts = [f"{type(error).__name__}: {_clip(str(error))}"]
    cause = error.__cause__
    while cause is not None:
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            parts += [f"  {'/'.join(map(str, e.absolute_path)) or '(root)'}: {_clip(e.message)}"
                      for e in schema_errors]
        cause = cause.__cause__
    return "\n".join(parts)


def _clip(text: str) -> str:
    """Head and tail of a long message: the offending value sits in the middle, the verdict at the end."""
    if len(text) <= MESSAGE_LIMIT:
        return text
    half = MESSAGE_LIMIT // 2
    return f"{text[:half]} … {text[-half:]}"
