"""A news item's deep link and image are links to the apps' own screens or https to the
configured hosts, nothing else (issue 12, item 7; core/links.py)."""

from __future__ import annotations

import uuid

import pytest

from core.config import get_settings
from news.models import NewsItem
from news.service import push_content
from notifications.content import PushSpec
from notifications.payloads import render
from tests.news.helpers import draft, make_desk
from tests.support.links import SAFE_LINKS, UNSAFE_LINKS


@pytest.fixture
async def editor(client):  # type: ignore[no-untyped-def]
    return (await make_desk(client)).headers["editor"]


async def test_unsafe_deep_links_are_422_and_nothing_is_stored(client, editor):
    for name, link in UNSAFE_LINKS.items():
        response = await client.post("/v1/news", json=draft(deep_link=link), headers=editor)
        assert response.status_code == 422, (name, response.text)
        details = response.json()["error"]["details"]
        assert [d["loc"][-1] for d in details] == ["deep_link"], (name, details)
        assert link not in response.text  # the offending value is never echoed back
    assert (await client.get("/v1/news", headers=editor)).json() == []


async def test_allowed_deep_links_are_stored_as_given(client, editor):
    for name, link in SAFE_LINKS.items():
        response = await client.post("/v1/news", json=draft(deep_link=link), headers=editor)
        assert response.status_code == 201, (name, response.text)
        assert response.json()["deep_link"] == link


async def test_an_upper_case_app_scheme_is_stored_in_lower_case(client, editor):
    # Android matches intent-filter schemes case-sensitively; the apps register lower case.
    response = await client.post(
        "/v1/news", json=draft(deep_link="Chuong-Portal://article/1"), headers=editor
    )
    assert response.status_code == 201, response.text
    assert response.json()["deep_link"] == "chuong-portal://article/1"


async def test_an_update_is_held_to_the_same_rule(client, editor):
    created = await client.post("/v1/news", json=draft(), headers=editor)
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]
    response = await client.put(
        f"/v1/news/{item_id}", json=draft(deep_link="javascript:alert(1)"), headers=editor
    )
    assert response.status_code == 422, response.text
    stored = (await client.get(f"/v1/news/{item_id}", headers=editor)).json()
    assert stored["deep_link"] == draft()["deep_link"]


async def test_images_are_https_to_the_configured_hosts_only(client, editor):
    for image in (
        "https://evil.example/a.jpg",
        "chuong-portal://image/1",
        "https://dangcongsan.vn@evil.example/a.jpg",
    ):
        response = await client.post("/v1/news", json=draft(image_url=image), headers=editor)
        assert response.status_code == 422, (image, response.text)
    fine = await client.post(
        "/v1/news", json=draft(image_url="https://dangcongsan.vn/img/nq57.jpg"), headers=editor
    )
    assert fine.status_code == 201, fine.text


async def test_the_allowed_schemes_and_hosts_are_settings(client, editor, monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "deep_link_schemes", ["chuong-portal", "javascript", "data"])
    monkeypatch.setattr(settings, "deep_link_hosts", ["tinmoi.vn"])
    other = await client.post("/v1/news", json=draft(deep_link="https://tinmoi.vn/a"), headers=editor)
    assert other.status_code == 201, other.text
    # Hosts are exact unless listed as "*.host"; the default host is no longer allowed.
    for link in ("https://m.tinmoi.vn/a", "https://dangcongsan.vn/a", "chuong-tracking://tasks"):
        response = await client.post("/v1/news", json=draft(deep_link=link), headers=editor)
        assert response.status_code == 422, (link, response.text)
    # Schemes a browser would run stay refused even when an operator lists them.
    for link in ("javascript://x/alert(1)", "data://x/y"):
        response = await client.post("/v1/news", json=draft(deep_link=link), headers=editor)
        assert response.status_code == 422, (link, response.text)


def test_a_stored_image_or_link_that_no_longer_passes_is_left_out_of_the_push():
    item = NewsItem(
        id=uuid.uuid4(),
        article_id="a-1",
        deep_link="javascript:alert(1)",
        image_url="https://evil.example/a.jpg",
        title={"vi": "Tin"},
        body={"vi": "Nội dung"},
        priority="high",
        collapse_key="news-a-1",
        ttl_seconds=3600,
    )
    data = render(PushSpec(id=str(uuid.uuid4()), content=push_content(item)), "vi").data
    assert "image_url" not in data and "deep_link" not in data
    item.image_url, item.deep_link = "https://dangcongsan.vn/a.jpg", "chuong-portal://article/a-1"
    data = render(PushSpec(id=str(uuid.uuid4()), content=push_content(item)), "vi").data
    assert (
        data["image_url"] == "https://dangcongsan.vn/a.jpg"
        and data["deep_link"] == "chuong-portal://article/a-1"
    )
