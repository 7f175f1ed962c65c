"""``PATCH /v1/sections/{code}``: rename a section or move it in the list; the owner rule of
archiving (national: system admins; a portal's: editors of its subtree), audited."""

from __future__ import annotations

from auth.roles import Role
from tests.sms.helpers import audit_rows
from tests.support.factories import make_account, make_unit, sign_in


async def test_a_portal_editor_renames_its_section_and_not_the_national_ones(client, redis):
    root = await make_unit()
    portal, other = await make_unit(parent=root), await make_unit(parent=root)
    editor = await sign_in(client, await make_account(role=Role.EDITOR, unit=portal))
    created = await client.post(
        "/v1/sections", json={"code": "nd-tin", "names": {"vi": "Tin", "en": "News"}}, headers=editor
    )
    assert created.status_code == 201, created.text

    renamed = await client.patch(
        "/v1/sections/nd-tin", json={"names": {"vi": "Tin Nam Định"}, "position": 5}, headers=editor
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["names"] == {"vi": "Tin Nam Định"} and renamed.json()["position"] == 5
    kept = await client.patch("/v1/sections/nd-tin", json={"names": {"vi": "Tin NĐ"}}, headers=editor)
    assert kept.json()["position"] == 5  # absent position: kept
    no_vi = await client.patch("/v1/sections/nd-tin", json={"names": {"en": "News"}}, headers=editor)
    assert no_vi.status_code == 422
    too_long = await client.patch("/v1/sections/nd-tin", json={"names": {"vi": "x" * 201}}, headers=editor)
    assert too_long.status_code == 422
    national = await client.patch("/v1/sections/van-kien", json={"names": {"vi": "Khác"}}, headers=editor)
    assert national.status_code == 403 and national.json()["error"]["code"] == "section_not_yours"
    outsider = await sign_in(client, await make_account(role=Role.EDITOR, unit=other))
    foreign = await client.patch("/v1/sections/nd-tin", json={"names": {"vi": "Chiếm"}}, headers=outsider)
    assert foreign.status_code == 403
    missing = await client.patch("/v1/sections/khong-co", json={"names": {"vi": "X"}}, headers=editor)
    assert missing.status_code == 404
    reporter = await sign_in(client, await make_account(role=Role.REPORTER, unit=portal))
    assert (
        await client.patch("/v1/sections/nd-tin", json={"names": {"vi": "X"}}, headers=reporter)
    ).status_code == 403
    assert [r.action for r in await audit_rows("news.section")] == [
        "news.section.created",
        "news.section.updated",
        "news.section.updated",
    ]
