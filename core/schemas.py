"""Base Pydantic model for every request body.

- Unknown fields are rejected (no mass assignment of ``role``, ``unit_id``, ``status``…).
- Every string anywhere in the body is normalised to Unicode NFC; NUL bytes and lone surrogates
  are rejected with 422 here, before they can reach PostgreSQL and turn into a 500.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator


def clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates from "\ud800" escapes in JSON
        raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    return unicodedata.normalize("NFC", value)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
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
