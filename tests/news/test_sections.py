"""Sections (D-03): listed in the reader's language, followed per device or per account."""

import uuid

from sqlalchemy import select

from auth.roles import Role
from core.db import transaction
from devices.models import Device
from tests.support.factories import make_account, make_unit, sign_in

SEEDED = [
    "van-kien",
    "hoat-dong-lanh-dao",
    "tu-lieu-hoc-tap",
    "bao-ve-nen-tang-tu-tuong",
    "hoc-tap-lam-theo-bac",
]


async def test_national_sections_are_seeded_with_translations(client, redis):
    vi = (await client.get("/v1/sections")).json()
    assert [s["code"] for s in vi] == SEEDED
    assert vi[0]["name"] == "Văn kiện" and set(vi[0]["names"]) == {"vi", "en", "zh", "fr", "es", "ru"}
    en = (await client.get("/v1/sections?lang=en-GB")).json()
    assert en[0]["name"] == "Documents"
    assert (await client.get("/v1/sections?lang=xx")).json()[0]["name"] == "Văn kiện"


async def test_an_anonymous_device_follows_sections_and_keeps_its_other_topics(client, redis):
    registered = await client.post(
        "/v1/devices",
        json={"app": "portal", "platform": "android", "token": f"tok-{uuid.uuid4().hex}", "topics": ["beta"]},
    )
    headers = {"Authorization": f"Bearer {registered.json()['device_credential']}"}
    assert (await client.get("/v1/sections/following", headers=headers)).json() == {"sections": []}
    response = await client.put(
        "/v1/sections/following", headers=headers, json={"sections": ["van-kien", "tu-lieu-hoc-tap"]}
    )
    assert response.status_code == 200
    assert response.json() == {"sections": ["tu-lieu-hoc-tap", "van-kien"]}
    await client.put("/v1/sections/following", headers=headers, json={"sections": ["van-kien"]})
    devices = (await client.get("/v1/devices", headers=headers)).json()
    assert devices[0]["topics"] == ["beta", "van-kien"]
    unknown = await client.put("/v1/sections/following", headers=headers, json={"sections": ["nope"]})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_sections"
    assert (await client.put("/v1/sections/following", json={"sections": []})).status_code == 401


async def test_a_member_follows_per_account_on_every_portal_device_now_and_later(client, redis):
    member = await make_account(role=Role.MEMBER, unit=await make_unit(), enrolled=False)
    headers = await sign_in(client, member)

    async def register() -> str:
        body = {"app": "portal", "platform": "android", "token": f"tok-{uuid.uuid4().hex}"}
        response = await client.post("/v1/devices", json=body, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    first = await register()
    followed = await client.put(
        "/v1/sections/following", headers=headers, json={"sections": ["hoat-dong-lanh-dao"]}
    )
    assert followed.json() == {"sections": ["hoat-dong-lanh-dao"]}
    second = await register()
    async with transaction() as session:
        topics = dict(
            (await session.execute(select(Device.id, Device.topics).where(Device.user_id == member.id))).all()
        )
    assert topics == {uuid.UUID(first): ["hoat-dong-lanh-dao"], uuid.UUID(second): ["hoat-dong-lanh-dao"]}
    assert (await client.get("/v1/sections/following", headers=headers)).json() == {
        "sections": ["hoat-dong-lanh-dao"]
    }


async def test_a_portal_adds_and_archives_its_own_sections(client, redis):
    central = await make_unit()
    province = await make_unit(parent=central)
    editor = await sign_in(client, await make_account(role=Role.EDITOR, unit=province))
    other = await sign_in(client, await make_account(role=Role.EDITOR, unit=await make_unit(parent=central)))
    created = await client.post(
        "/v1/sections", headers=editor, json={"code": "hue-24h", "names": {"vi": "Huế 24h", "en": "Hue 24h"}}
    )
    assert created.status_code == 201 and created.json()["unit_id"] == str(province.id)
    clash = await client.post("/v1/sections", headers=editor, json={"code": "van-kien", "names": {"vi": "x"}})
    assert clash.status_code == 409
    listed = (await client.get(f"/v1/sections?unit_id={province.id}")).json()
    assert [s["code"] for s in listed] == ["hue-24h"]
    assert (await client.delete("/v1/sections/hue-24h", headers=other)).status_code == 403
    assert (await client.delete("/v1/sections/van-kien", headers=editor)).status_code == 403
    assert (await client.delete("/v1/sections/hue-24h", headers=editor)).status_code == 204
    assert "hue-24h" not in [s["code"] for s in (await client.get("/v1/sections")).json()]


async def test_devices_register_their_province_and_app_version(client, redis):
    body = {
        "app": "portal",
        "platform": "ios",
        "token": "ab" * 32,
        "province": "ha-noi",
        "app_version": "2.10.1",
    }
    registered = await client.post("/v1/devices", json=body)
    assert registered.status_code == 201, registered.text
    assert registered.json()["province"] == "ha-noi" and registered.json()["app_version"] == "2.10.1"
    async with transaction() as session:
        device = await session.get(Device, uuid.UUID(registered.json()["id"]))
        assert device is not None and device.app_version_code == (2 * 100_000 + 10) * 100_000 + 1
    bad = await client.post("/v1/devices", json={**body, "province": "Hà Nội"})
    assert bad.status_code == 422
