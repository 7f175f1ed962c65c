"""A generic HTTP SMS gateway: one JSON POST per message.

Request: ``POST <url>`` with ``{"to", "sender", "text", "reference"}``, an ``Idempotency-Key``
header (the ledger id), and HTTP basic auth or a bearer API key. Vietnamese carrier gateways
differ in field names but share this shape; a gateway needing another shape gets its own
adapter behind ``SmsProvider``.

Reply: any 2xx is accepted; the message id is read from ``id`` or ``message_id`` when the body
is JSON. 408/429/5xx, timeouts and connection errors are transient; other 4xx are permanent.
"""

from __future__ import annotations

import base64

import aiohttp

from notifications.providers.sms import SmsOutcome, SmsRequest, SmsResult

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpSmsGateway:
    def __init__(
        self,
        *,
        url: str,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        name: str = "http",
    ) -> None:
        self.name = name
        self._url = url
        self._headers: dict[str, str] = {}
        if username:
            basic = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
            self._headers["authorization"] = f"Basic {basic}"
        elif api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self._session

    async def send(self, request: SmsRequest) -> SmsResult:
        body = {
            "to": request.to,
            "sender": request.sender,
            "text": request.text,
            "reference": request.reference,
        }
        try:
            async with self._client().post(
                self._url, json=body, headers={"idempotency-key": request.reference}
            ) as response:
                status = response.status
                document: object = None
                if response.content_type == "application/json":
                    try:
                        document = await response.json()
                    except (ValueError, aiohttp.ContentTypeError):
                        document = None
        except TimeoutError:
            return SmsResult(SmsOutcome.RETRY, error_code="timeout")
        except aiohttp.ClientError as exc:
            return SmsResult(SmsOutcome.RETRY, error_code=f"connection:{type(exc).__name__}"[:64])
        if 200 <= status < 300:
            message_id = None
            if isinstance(document, dict):
                raw = document.get("id") or document.get("message_id")
                message_id = str(raw)[:255] if raw is not None else None
            return SmsResult(SmsOutcome.ACCEPTED, message_id=message_id)
        outcome = SmsOutcome.RETRY if status in TRANSIENT_STATUSES else SmsOutcome.FAILED
        return SmsResult(outcome, error_code=f"http_{status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
