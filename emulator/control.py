"""The control API: plain HTTP/1.1 JSON for tests, benchmarks and people with curl.

GET    /health                     {"ok": true}
GET    /ca.pem                     the emulator CA certificate (for clients elsewhere)
GET    /faults                     current fault settings
PUT    /faults  (or POST, PATCH)   partial update, e.g. {"outage": true}, {"error_rate": 0.1,
                                   "error_kind": "unavailable"}, {"latency_ms": 50},
                                   {"retry_after_s": 5}; answers the new settings
POST   /reset                      fault defaults, empty record, zero counts
GET    /messages?token=&provider=&limit=   recorded messages, oldest first
DELETE /messages                   empty the record and zero the counts
GET    /stats                      counts per provider and outcome, connections, record size
POST   /drop-connections           GOAWAY every provider connection (clients reconnect)
POST   /reset-connections          TCP RST every provider connection, mid-stream: requests in
                                   flight get no answer (they may have been recorded as sent)
POST   /token                      OAuth2 token endpoint over plain HTTP, for a service
                                   account whose token_uri points here
*      /sms/...                    the SMS gateway sink (emulator/sms.py)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from emulator.faults import FaultInjector, FaultSettingsError
from emulator.fcm import token_reply
from emulator.http_types import Reply, Request, json_reply
from emulator.records import MessageLog
from emulator.sms import SmsSink


class ControlHandler:
    def __init__(
        self,
        *,
        faults: FaultInjector,
        log: MessageLog,
        ca_pem: bytes,
        drop_connections: Callable[[], None],
        reset_connections: Callable[[], None],
        sms: SmsSink | None = None,
    ) -> None:
        self.faults = faults
        self.log = log
        self.sms = sms or SmsSink()
        self._ca_pem = ca_pem
        self._drop_connections = drop_connections
        self._reset_connections = reset_connections

    def __call__(self, request: Request) -> Reply:
        path, _, query = request.path.partition("?")
        method = request.method
        route = (method, path)
        if route == ("GET", "/health"):
            return json_reply(200, {"ok": True})
        if route == ("GET", "/ca.pem"):
            return Reply(status=200, body=self._ca_pem, headers=[("content-type", "application/x-pem-file")])
        if path == "/faults":
            if method == "GET":
                return json_reply(200, self.faults.settings.as_json())
            if method in ("PUT", "POST", "PATCH"):
                return self._update_faults(request.body)
        if path.startswith("/sms/"):
            return self.sms(request)
        if route == ("POST", "/reset"):
            self.faults.reset()
            self.log.clear()
            self.sms.clear()
            return json_reply(200, {"faults": self.faults.settings.as_json()})
        if path == "/messages":
            if method == "GET":
                return self._messages(query)
            if method == "DELETE":
                self.log.clear()
                return json_reply(200, {"cleared": True})
        if route == ("GET", "/stats"):
            return json_reply(200, self.stats())
        if route == ("POST", "/drop-connections"):
            self._drop_connections()
            return json_reply(200, {"dropped": True})
        if route == ("POST", "/reset-connections"):
            self._reset_connections()
            return json_reply(200, {"reset": True})
        if path == "/token":
            return token_reply(request, self.log)
        return json_reply(404, {"error": f"no route {method} {path}"})

    def stats(self) -> dict[str, Any]:
        return {
            **self.log.stats.as_json(),
            "record": {
                "enabled": self.log.enabled,
                "size": len(self.log),
                "max_records": self.log.max_records,
                "max_payloads": self.log.max_payloads,
            },
            "faults": self.faults.settings.as_json(),
        }

    def _update_faults(self, body: bytes) -> Reply:
        try:
            changes = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            return json_reply(400, {"error": "body must be JSON"})
        if not isinstance(changes, dict):
            return json_reply(400, {"error": "body must be a JSON object"})
        try:
            settings = self.faults.update(changes)
        except FaultSettingsError as error:
            return json_reply(400, {"error": str(error)})
        return json_reply(200, settings.as_json())

    def _messages(self, query: str) -> Reply:
        params = parse_qs(query)
        token = params.get("token", [None])[0]
        provider = params.get("provider", [None])[0]
        try:
            limit = int(params.get("limit", ["1000"])[0])
        except ValueError:
            return json_reply(400, {"error": "limit must be an integer"})
        records = self.log.find(token=token, provider=provider, limit=limit)
        return json_reply(200, {"count": len(records), "messages": [record.as_json() for record in records]})
