"""Answers rendered once by the route, for the read surge's hot routes (an app's unread count,
first page and registration at every start).

Given a model back, FastAPI validates it against the route's ``response_model`` once more and
then dumps it; the route built that model itself a moment before. These routes keep their
``response_model`` (the OpenAPI document, the contract) and return the JSON dumped by the model's
own pydantic serializer, which is what FastAPI's dump produces for models without aliases.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def rendered(model: BaseModel, *, status_code: int = 200) -> Response:
    return Response(
        model.__pydantic_serializer__.to_json(model), status_code=status_code, media_type="application/json"
    )


def rendered_json(content: bytes, *, status_code: int = 200) -> Response:
    """JSON already dumped (``orjson.dumps`` of plain values)."""
    return Response(content, status_code=status_code, media_type="application/json")
