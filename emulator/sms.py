"""An SMS gateway sink on the control port: what ``notifications/providers/sms_http.py`` sends
to when no real gateway is configured (tests, ``make run``).

POST   /sms/send                   the gateway endpoint: JSON {"to", "sender", "text", "reference"};
                                   answers {"id": ...}; a repeated reference (Idempotency-Key) is
                                   answered with the first id and not recorded twice
GET    /sms/messages?to=&limit=    received messages, oldest first
DELETE /sms/messages               empty the record
GET    /sms/faults                 current faults
PUT    /sms/faults                 {"fail_next": N, "status": 503} fails the next N sends with
                                   that status; {"outage": true} fails every send with 503
"""

from __future__ import annotations

import base64
import itertools
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

import orjson

from emulator.http_types import Reply, Request, json_reply


class SmsSink:
    def __init__(self, *, max_records: int = 100_000) -> None:
        self._records: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._by_reference: dict[str, str] = {}
        self._ids = itertools.count(1)
        self.fail_next = 0
        self.fail_status = 503
        self.outage = False
        self.attempts = 0  # every POST /sms/send, failed or not

    def clear(self) -> None:
        self._records.clear()
        self._by_reference.clear()
        self.fail_next = 0
        self.fail_status = 503
        self.outage = False
        self.attempts = 0

    def messages(self, *, to: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        matches = [record for record in self._records if to is None or record["to"] == to]
        return matches[-max(limit, 1) :]

    def __call__(self, request: Request) -> Reply:
        path, _, query = request.path.partition("?")
        route = (request.method, path)
        if route == ("POST", "/sms/send"):
            return self._send(request)
        if path == "/sms/messages":
            if request.method == "GET":
                params = parse_qs(query)
                try:
                    limit = int(params.get("limit", ["1000"])[0])
                except ValueError:
                    return json_reply(400, {"error": "limit must be an integer"})
                found = self.messages(to=params.get("to", [None])[0], limit=limit)
                return json_reply(200, {"count": len(found), "messages": found})
            if request.method == "DELETE":
                self.clear()
                return json_reply(200, {"cleared": True})
        if path == "/sms/faults":
            if request.method == "GET":
                return json_reply(200, self._faults())
            if request.method in ("PUT", "POST", "PATCH"):
                return self._update_faults(request.body)
        return json_reply(404, {"error": f"no route {request.method} {path}"})

    def _faults(self) -> dict[str, Any]:
        return {"fail_next": self.fail_next, "status": self.fail_status, "outage": self.outage}

    def _update_faults(self, body: bytes) -> Reply:
        try:
            changes = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            return json_reply(400, {"error": "body must be JSON"})
        if not isinstance(changes, dict) or set(changes) - {"fail_next", "status", "outage"}:
            return json_reply(400, {"error": "expected an object with fail_next, status, outage"})
        if "fail_next" in changes:
            self.fail_next = int(changes["fail_next"])
        if "status" in changes:
            self.fail_status = int(changes["status"])
        if "outage" in changes:
            self.outage = bool(changes["outage"])
        return json_reply(200, self._faults())

    def _send(self, request: Request) -> Reply:
        self.attempts += 1
        if self.outage:
            return json_reply(503, {"error": "gateway outage"})
        if self.fail_next > 0:
            self.fail_next -= 1
            return json_reply(self.fail_status, {"error": "injected failure"})
        try:
            document = orjson.loads(request.body or b"")
        except orjson.JSONDecodeError:
            return json_reply(400, {"error": "body must be JSON"})
        if not isinstance(document, dict) or not all(
            isinstance(document.get(key), str) and document.get(key) for key in ("to", "text", "sender")
        ):
            return json_reply(400, {"error": "to, sender and text are required strings"})
        reference = str(document.get("reference") or request.headers.get("idempotency-key") or "")
        if reference and reference in self._by_reference:
            return json_reply(200, {"id": self._by_reference[reference], "duplicate": True})
        message_id = f"sms-{next(self._ids)}"
        if reference:
            self._by_reference[reference] = message_id
        self._records.append(
            {
                "id": message_id,
                "to": document["to"],
                "sender": document["sender"],
                "text": document["text"],
                "reference": reference or None,
                "auth": _auth_kind(request.headers.get("authorization")),
                "received_at": time.time(),
            }
        )
        return json_reply(200, {"id": message_id})


def _auth_kind(header: str | None) -> str | None:
    """Which credentials came (not their value), so tests can check the adapter sends them."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            return "basic:" + base64.b64decode(value).decode().partition(":")[0]
        except ValueError:
            return "basic:?"
    return scheme.lower()
