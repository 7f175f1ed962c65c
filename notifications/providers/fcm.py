"""FCM through firebase-admin: the library encodes messages, sends them over HTTP/2 and maps
FCM's error JSON to exceptions; this module only classifies the outcome of each message."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import firebase_admin
from firebase_admin import exceptions, messaging

from notifications.cancellation import stopped
from notifications.payloads import fcm_message
from notifications.providers.base import STOPPED, Outcome, PushRequest, SendResult
from notifications.providers.fcm_app import close_firebase_app
from notifications.providers.retry_after import retry_after_of

BATCH_LIMIT = 500  # messaging.send_each_async accepts at most 500 messages a call


def classify(error: Exception) -> SendResult:
    """What to do next about one failed message (sygnal-style: a table, not special cases)."""
    code = getattr(error, "code", None) or type(error).__name__
    if isinstance(error, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return SendResult(Outcome.INVALID_TOKEN, error_code=_fcm_code(error))
    if isinstance(error, exceptions.InvalidArgumentError):
        # INVALID_ARGUMENT covers both a malformed token and a malformed message; only the
        # former says "registration token".
        if "registration token" in str(error).lower():
            return SendResult(Outcome.INVALID_TOKEN, error_code="INVALID_ARGUMENT")
        return SendResult(Outcome.FAILED, error_code="INVALID_ARGUMENT")
    if isinstance(error, messaging.QuotaExceededError | exceptions.ResourceExhaustedError):
        return SendResult(Outcome.RETRY, error_code="QUOTA_EXCEEDED", retry_after=retry_after_of(error))
    if isinstance(
        error,
        exceptions.UnavailableError
        | exceptions.InternalError
        | exceptions.DeadlineExceededError
        | exceptions.UnknownError,
    ):
        return SendResult(Outcome.RETRY, error_code=_fcm_code(error), retry_after=retry_after_of(error))
    # Refusals of the sender, not of the device: the APNs key Firebase holds for us, or our own
    # credential or its rights. Every push fails alike until an operator fixes it, so they are
    # retried (the breaker counts them, the provider alert fires) rather than failed for good.
    if isinstance(error, messaging.ThirdPartyAuthError):
        return SendResult(Outcome.RETRY, error_code="THIRD_PARTY_AUTH_ERROR")
    if isinstance(error, exceptions.UnauthenticatedError | exceptions.PermissionDeniedError):
        return SendResult(Outcome.RETRY, error_code=_fcm_code(error))
    if isinstance(error, exceptions.FirebaseError):
        return SendResult(Outcome.FAILED, error_code=_fcm_code(error))
    return SendResult(Outcome.RETRY, error_code=f"transport:{code}"[:64])


def _fcm_code(error: Exception) -> str:
    names = {
        messaging.UnregisteredError: "UNREGISTERED",
        messaging.SenderIdMismatchError: "SENDER_ID_MISMATCH",
        exceptions.UnavailableError: "UNAVAILABLE",
        exceptions.InternalError: "INTERNAL",
        exceptions.DeadlineExceededError: "DEADLINE_EXCEEDED",
    }
    for kind, name in names.items():
        if isinstance(error, kind):
            return name
    code = getattr(error, "code", None)
    return str(code or type(error).__name__)[:64]


class FcmProvider:
    name = "fcm"

    def __init__(
        self, app: firebase_admin.App, *, app_for_project: Callable[[str], firebase_admin.App] | None = None
    ) -> None:
        """``app_for_project``: a firebase-admin App like ``app`` (same credentials and endpoint)
        for another FCM project (PushSpec.fcm_project_id); made on first use, kept until close."""
        self.app = app
        self._app_for_project = app_for_project
        self._apps: dict[str, firebase_admin.App] = {}

    def _app_of(self, project: str | None) -> firebase_admin.App:
        if project is None:
            return self.app
        if not self._apps:  # the configured project is ``app``'s own (read on first need)
            self._apps[messaging._get_messaging_service(self.app)._project_id] = self.app
        app = self._apps.get(project)
        if app is None:
            if self._app_for_project is None:
                raise ValueError(f"no FCM App for project {project!r}")
            app = self._apps[project] = self._app_for_project(project)
        return app

    async def send(self, requests: Sequence[PushRequest]) -> list[SendResult]:
        results: list[SendResult] = []
        # A batch is one notification, so one project; requests of several are sent per project.
        for start, end in _runs(requests):
            results.extend(await self._send_run(requests[start:end]))
        return results

    async def _send_run(self, requests: Sequence[PushRequest]) -> list[SendResult]:
        try:
            app = self._app_of(requests[0].spec.fcm_project_id)
        except ValueError as exc:  # no App for the project (a bad credentials file): nothing sent
            failure = SendResult(Outcome.FAILED, error_code=f"fcm_app:{exc}"[:64])
            return [failure for _ in requests]
        results: list[SendResult] = []
        for start in range(0, len(requests), BATCH_LIMIT):
            chunk = requests[start : start + BATCH_LIMIT]
            # firebase-admin starts a whole call's messages at once: a cancel is seen per call.
            if stopped(chunk[0].spec.id):
                results.extend(STOPPED for _ in chunk)
                continue
            messages = [fcm_message(r.spec, r.push, token=r.token) for r in chunk]
            try:
                batch = await messaging.send_each_async(messages, app=app)
            except Exception as exc:  # the whole call failed (e.g. credentials): retry them all
                failure = classify(exc)
                results.extend(failure for _ in chunk)
                continue
            for response in batch.responses:
                if response.success:
                    results.append(SendResult.accepted(response.message_id))
                else:
                    results.append(classify(response.exception))
        return results

    async def close(self) -> None:
        for app in {id(app): app for app in (self.app, *self._apps.values())}.values():
            await close_firebase_app(app)


def _runs(requests: Sequence[PushRequest]) -> list[tuple[int, int]]:
    """[start, end) ranges of consecutive requests for one FCM project."""
    runs: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(requests) + 1):
        if (
            index == len(requests)
            or requests[index].spec.fcm_project_id != requests[start].spec.fcm_project_id
        ):
            runs.append((start, index))
            start = index
    return runs
