"""The emulator's SMS sink control routes (what tests and `make run` users query)."""

from __future__ import annotations

import httpx


async def test_sink_records_filters_and_rejects_bad_requests(emulator):
    emulator.reset()
    async with httpx.AsyncClient(base_url=emulator.control_url) as http:
        sent = await http.post("/sms/send", json={"to": "+84900000001", "sender": "CHUONG", "text": "x"})
        assert sent.status_code == 200 and sent.json()["id"].startswith("sms-")
        assert (await http.post("/sms/send", json={"to": "+84900000001"})).status_code == 400
        assert (await http.post("/sms/send", content=b"not json")).status_code == 400
        assert (await http.put("/sms/faults", json={"bogus": 1})).status_code == 400
        assert (await http.put("/sms/faults", json={"outage": True})).json()["outage"] is True
        assert (
            await http.post("/sms/send", json={"to": "+1", "sender": "S", "text": "t"})
        ).status_code == 503
        listed = (await http.get("/sms/messages", params={"to": "+84900000001"})).json()
        assert listed["count"] == 1 and listed["messages"][0]["text"] == "x"
        assert (await http.post("/reset")).status_code == 200
        assert (await http.get("/sms/messages")).json()["count"] == 0
        assert (await http.get("/sms/faults")).json()["outage"] is False
