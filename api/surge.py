"""The read surge's routes without FastAPI's per-request solving (issue 16 item 4).

After a breaking push most requests are an app's unread count, its first inbox page and its
registration at start, with a device credential or none. For every request FastAPI solves the
route's declaration anew: each dependency's parameters, cache key, exit stack and cancel scope,
a ``Response`` per dependency level, and every query parameter through its alias, sequence and
model checks and a deep copy of its default — about a third of a device's unread count.

``SurgeRoute`` (the route class of the inbox and devices routers) keeps each route declared as
before (the OpenAPI document, the policies' checks in tests, the standard handler) and, for a
route given a ``fast_path``, answers the surge's callers itself: the route's own query fields
and body field (FastAPI's, with their validators) read without the general machinery, then the
route's fast path, which runs the same session, policy and endpoint the dependencies would.
Everything else takes the standard handler, unchanged: a caller the fast path is not for
(``FastPath.serves``: e.g. signed-in users), a parameter or body that does not validate (so the
422 is FastAPI's own), a query field of a kind read otherwise (aliases, lists, models), a body
that is not plain ``application/json``. Nothing has happened when the standard handler takes
over: no dependency ran, nothing was counted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from fastapi import Request, Response
from fastapi._compat import ModelField, field_annotation_is_sequence
from fastapi.dependencies.utils import _get_param_aliases, _get_param_model, _is_json_field
from fastapi.params import Body, Form, Query
from fastapi.routing import APIRoute

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

# Defaults FastAPI would deep-copy per request, which are immutable: shared as they are.
_IMMUTABLE = (type(None), bool, int, float, str, bytes)


@dataclass(frozen=True)
class FastPath:
    """A route's own handling of the surge's callers. ``serves``: whether this request is one of
    them (read from its headers only); ``run``: the answer, given the route's parameter values by
    name (``body`` for the body), doing what the route's dependencies and endpoint would."""

    serves: Callable[[Request], bool]
    run: Callable[[Request, dict[str, Any]], Awaitable[Response]]


_FAST: dict[Callable[..., Any], FastPath] = {}


def fast_path(path: FastPath) -> Callable[[Endpoint], Endpoint]:
    """Give the endpoint a ``FastPath`` (its router's route class must be ``SurgeRoute``)."""

    def mark(endpoint: Endpoint) -> Endpoint:
        _FAST[endpoint] = path
        return endpoint

    return mark


@dataclass(frozen=True)
class _QueryField:
    name: str
    alias: str
    field: ModelField
    required: bool
    default: object


def _query_fields(fields: Sequence[ModelField]) -> list[_QueryField] | None:
    """The route's query fields as FastAPI reads them, or None if any is read otherwise than by
    its one alias (choices, models, lists, JSON) or has a default to copy or validate."""
    found = []
    for field in fields:
        info = field.field_info
        aliases = _get_param_aliases(field)
        default = info.default
        if (
            not isinstance(info, Query)
            or _get_param_model(field) is not None
            or _is_json_field(field)
            or len(aliases) != 1
            or aliases[0][0] != aliases[0][1]
            or info.validate_default
            or (not info.is_required() and not isinstance(default, _IMMUTABLE))
            # FastAPI reads sequences with ``getlist``
            or field_annotation_is_sequence(info.annotation)
        ):
            return None
        found.append(
            _QueryField(
                name=field.name,
                alias=aliases[0][1],
                field=field,
                required=info.is_required(),
                default=default,
            )
        )
    return found


def _body_field(route: APIRoute) -> tuple[bool, ModelField | None]:
    """Whether the route's body is read here, and its field: none, or one JSON body field
    validated as a whole (at ``("body",)``), as FastAPI does for a single body parameter."""
    fields = route.dependant.body_params
    if not fields:
        return True, None
    info = fields[0].field_info
    single = len(fields) == 1 and not route._embed_body_fields and not getattr(info, "embed", False)
    return single and isinstance(info, Body) and not isinstance(info, Form), fields[0]


def _json_content(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.lower() in ("application/json", "application/json; charset=utf-8")


class SurgeRoute(APIRoute):
    """An ``APIRoute`` whose endpoint, when given a ``fast_path``, answers that path's callers
    itself (see the module's docstring); every other route of the router is a plain ``APIRoute``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        path = _FAST.get(self.endpoint)
        if path is None:
            return standard
        dependant = self.dependant
        query = _query_fields(dependant.query_params)
        body_read, body_field = _body_field(self)
        if (
            query is None
            or not body_read
            or dependant.path_params
            or dependant.header_params
            or dependant.cookie_params
        ):
            return standard  # read otherwise: FastAPI's handler only
        serves, run = path.serves, path.run

        async def handler(request: Request) -> Response:
            if not serves(request):
                return await standard(request)
            values: dict[str, Any] = {}
            if query:
                params = request.query_params
                for wanted in query:
                    if wanted.alias not in params:
                        if wanted.required:
                            return await standard(request)  # required: FastAPI's 422
                        values[wanted.name] = wanted.default
                        continue
                    value, errors = wanted.field.validate(
                        params[wanted.alias], values, loc=("query", wanted.alias)
                    )
                    if errors:
                        return await standard(request)  # FastAPI's 422, from the same validators
                    values[wanted.name] = value
            if body_field is not None:
                raw = await request.body()  # kept on the request: the standard handler reads it too
                if not raw or not _json_content(request):
                    return await standard(request)
                try:
                    received = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return await standard(request)  # FastAPI's own json_invalid answer
                value, errors = body_field.validate(received, {}, loc=("body",))
                if errors:
                    return await standard(request)
                values[body_field.name] = value
            return await run(request, values)

        return handler
