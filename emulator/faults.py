"""Fault injection: token prefixes, a random error rate, added latency and a full outage.

A fault is provider-neutral here (`FaultKind`); `fcm.py` and `apns.py` translate it into each
provider's real status code and error body.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    """Also the token prefixes: a token "unregistered-abc" gets FaultKind.UNREGISTERED."""

    UNREGISTERED = "unregistered"  # FCM 404 UNREGISTERED / APNs 410 Unregistered
    # The value is a token prefix, not a secret (S105).
    BAD_TOKEN = "bad"  # noqa: S105 - FCM 400 INVALID_ARGUMENT / APNs 400 BadDeviceToken
    QUOTA = "quota"  # FCM 429 QUOTA_EXCEEDED / APNs 429 TooManyRequests, both with Retry-After
    UNAVAILABLE = "unavailable"  # 503
    INTERNAL = "internal"  # 500
    SENDER_MISMATCH = "mismatch"  # FCM 403 SENDER_ID_MISMATCH / APNs 400 DeviceTokenNotForTopic
    THIRD_PARTY_AUTH = "third-party-auth"  # FCM 401 THIRD_PARTY_AUTH_ERROR / APNs 403 InvalidProviderToken
    # A message the provider refuses for what it says, not the token: FCM 400 INVALID_ARGUMENT
    # (no "registration token" in it) / APNs 400 BadExpirationDate. Fails for good, no retry helps.
    INVALID_MESSAGE = "invalid-message"


# "slow-" is not a FaultKind: it only delays an otherwise normal answer.
SLOW_PREFIX = "slow-"
_PREFIXES: tuple[tuple[str, FaultKind], ...] = tuple((f"{kind.value}-", kind) for kind in FaultKind)
_ALL_PREFIXES = (SLOW_PREFIX, *(prefix for prefix, _ in _PREFIXES))


@dataclass(slots=True)
class FaultSettings:
    error_rate: float = 0.0  # fraction of otherwise-good requests answered with `error_kind`
    error_kind: FaultKind = FaultKind.UNAVAILABLE
    latency_ms: float = 0.0  # added to every provider request
    slow_latency_ms: float = 500.0  # added to requests whose token starts with "slow-"
    outage: bool = False  # every provider request answered 503
    retry_after_s: int = 1  # Retry-After on 429 and 503 answers

    def as_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["error_kind"] = self.error_kind.value
        return document


class FaultSettingsError(ValueError):
    pass


@dataclass(slots=True)
class FaultDecision:
    kind: FaultKind | None
    delay: float  # seconds


_NO_FAULT = FaultDecision(kind=None, delay=0.0)


class FaultInjector:
    def __init__(self, defaults: FaultSettings | None = None, *, seed: int | None = None) -> None:
        self._defaults = defaults or FaultSettings()
        self.settings = FaultSettings(**asdict(self._defaults))
        # Not for security: a reproducible coin for the error-rate fault.
        self._random = random.Random(seed)  # noqa: S311

    def reset(self) -> None:
        self.settings = FaultSettings(**asdict(self._defaults))

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Apply a partial update from the control API; all-or-nothing on validation errors."""
        known = {f.name for f in fields(FaultSettings)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise FaultSettingsError(f"unknown fault settings: {', '.join(unknown)}")
        candidate = FaultSettings(**{**asdict(self.settings), **changes})
        try:
            candidate.error_rate = float(candidate.error_rate)
            candidate.latency_ms = float(candidate.latency_ms)
            candidate.slow_latency_ms = float(candidate.slow_latency_ms)
            candidate.retry_after_s = int(candidate.retry_after_s)
            candidate.error_kind = FaultKind(candidate.error_kind)
        except (TypeError, ValueError) as error:
            raise FaultSettingsError(str(error)) from error
        if not isinstance(candidate.outage, bool):
            raise FaultSettingsError("outage must be true or false")
        if not 0.0 <= candidate.error_rate <= 1.0:
            raise FaultSettingsError("error_rate must be between 0 and 1")
        if candidate.latency_ms < 0 or candidate.slow_latency_ms < 0 or candidate.retry_after_s < 0:
            raise FaultSettingsError("latencies and retry_after_s must not be negative")
        self.settings = candidate
        return candidate

    def decide(self, token: str) -> FaultDecision:
        """The fault (if any) and delay for a request that passed auth and validation."""
        settings = self.settings
        delay = settings.latency_ms / 1000.0
        kind: FaultKind | None = None
        # One C-level startswith rejects the common case before the prefix loop.
        if token.startswith(_ALL_PREFIXES):
            if token.startswith(SLOW_PREFIX):
                delay += settings.slow_latency_ms / 1000.0
            else:
                for prefix, prefix_kind in _PREFIXES:
                    if token.startswith(prefix):
                        kind = prefix_kind
                        break
        if kind is None and settings.error_rate > 0.0 and self._random.random() < settings.error_rate:
            kind = settings.error_kind
        if kind is None and delay == 0.0:
            return _NO_FAULT
        return FaultDecision(kind=kind, delay=delay)

    @property
    def outage(self) -> bool:
        return self.settings.outage

    @property
    def base_delay(self) -> float:
        return self.settings.latency_ms / 1000.0
