"""Base Pydantic model for every request body.

- Unknown fields are rejected (no mass assignment of ``role``, ``unit_id``, ``status``…).
- Every string anywhere in the body is normalised to Unicode NFC; NUL bytes and lone surrogates
  are rejected with 422 here, before they can reach PostgreSQL and turn into a 500.
- Dates, integers and lengths are bounded by the field types (core/types.py).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

from core.types import clean_text

# No request body of the API nests deeper than a few levels; a body of 900 nested lists would
# otherwise exhaust Python's recursion limit here or in pydantic (a 500). Deeper bodies are 422.
MAX_JSON_DEPTH = 32


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict | list) and depth >= MAX_JSON_DEPTH:
        raise ValueError(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value]
    return value


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @model_validator(mode="before")
    @classmethod
    def _normalise_strings(cls, data: Any) -> Any:
        return _clean(data)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """A keyset-paginated list: pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[ItemT]
    next_cursor: str | None = None
