"""Requests of the SMS fallback's operators: the degraded-mode switch and a breaker reset. One
model each, read by the API (``/v1/sms``) and the console alike."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from core.schemas import RequestModel

Reason = Annotated[str, StringConstraints(min_length=3, max_length=500, strip_whitespace=True)]


class DegradedModeSwitch(RequestModel):
    enabled: bool
    reason: Reason


class BreakerReset(RequestModel):
    reason: Reason
