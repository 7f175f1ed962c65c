"""What an item says and how it will look: payload limits, text never interpreted, preview."""

import json

from tests.news.helpers import apns, create, draft, fcm, make_desk, readers


async def test_a_title_whose_payload_exceeds_4096_bytes_names_the_language_and_size(client, redis):
    desk = await make_desk(client)
    # 1,400 Vietnamese letters with diacritics are 3 bytes each in UTF-8: > 4096 bytes.
    long_title = {"vi": "Tin ngắn", "en": "Short", "ru": "Ж" * 500 + "ệ" * 1400}
    response = await client.post(
        "/v1/news",
        json=draft(title=long_title, body={"vi": "a", "en": "b", "ru": "c"}),
        headers=desk.headers["editor"],
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    worst = max(error["details"], key=lambda d: d["bytes"])
    assert worst["language"] == "ru" and worst["bytes"] > 4096
    assert "ru" in error["message"] and str(worst["bytes"]) in error["message"]


async def test_script_in_a_title_is_stored_and_sent_as_plain_text(client, redis):
    desk = await make_desk(client)
    title = '<script>alert("x")</script> Tin & "trích dẫn"'
    item = await create(client, desk.headers["editor"], title={"vi": title}, body={"vi": "<b>đậm</b>"})
    fetched = await client.get(f"/v1/news/{item['id']}", headers=desk.headers["editor"])
    assert fetched.headers["content-type"].startswith("application/json")
    assert fetched.json()["title"]["vi"] == title and fetched.json()["body"]["vi"] == "<b>đậm</b>"
    preview = (await client.get(f"/v1/news/{item['id']}/preview", headers=desk.headers["editor"])).json()
    vi = next(lang for lang in preview["languages"] if lang["language"] == "vi")
    assert vi["android"]["payload"]["message"]["notification"]["title"] == title
    assert vi["ios"]["payload"]["aps"]["alert"]["title"] == title


async def test_preview_shows_exact_payloads_sizes_and_audience_per_language(client, redis):
    await readers(fcm(2, "vi") + fcm(1, "ru") + apns(1, "en") + apns(1, "fr"))
    await readers(fcm(1, "en"), topics=["van-kien"])
    desk = await make_desk(client)
    item = await create(
        client, desk.headers["editor"], collapse_key="tin-1", image_url="https://img.dangcongsan.vn/a.jpg"
    )
    response = await client.get(f"/v1/news/{item['id']}/preview", headers=desk.headers["editor"])
    assert response.status_code == 200, response.text
    preview = response.json()
    by_language = {lang["language"]: lang for lang in preview["languages"]}
    assert list(by_language) == ["vi", "en", "zh", "fr", "es", "ru"]
    assert preview["limit"] == 4096 and preview["fits"] is True and preview["audience_total"] == 6
    en = by_language["en"]
    assert en["content_language"] == "en" and en["audience"] == {"android": 1, "ios": 1}
    message = en["android"]["payload"]["message"]
    assert message["notification"] == {"title": "Breaking news", "body": "Story body"}
    assert message["android"]["collapse_key"] == "tin-1" and message["data"]["image_url"].startswith(
        "https://"
    )
    assert en["ios"]["payload"]["aps"]["alert"]["title"] == "Breaking news"
    # Sizes count the largest badge a reader can get, as the 4096-byte check does.
    assert en["ios"]["payload"]["aps"]["badge"] == 99 and message["data"]["badge"] == "99"
    # The iOS size is the JSON the provider receives, counted in bytes (UTF-8).
    ios_json = json.dumps(by_language["vi"]["ios"]["payload"], ensure_ascii=False).encode()
    assert by_language["vi"]["ios"]["bytes"] == len(ios_json)
    assert by_language["vi"]["audience"] == {"android": 2, "ios": 0}
    # Russian readers fall back to Vietnamese.
    assert by_language["ru"]["content_language"] == "vi" and by_language["ru"]["audience"]["android"] == 1
    assert (
        by_language["ru"]["android"]["payload"]["message"]["notification"]["title"]
        == "Tin đặc biệt quan trọng"
    )


async def test_preview_with_skip_missing_shows_who_is_left_out(client, redis):
    await readers(fcm(1, "vi") + fcm(3, "fr"))
    desk = await make_desk(client)
    item = await create(client, desk.headers["editor"], language_policy="skip_missing")
    preview = (await client.get(f"/v1/news/{item['id']}/preview", headers=desk.headers["editor"])).json()
    by_language = {lang["language"]: lang for lang in preview["languages"]}
    assert by_language["fr"]["content_language"] is None and by_language["fr"]["android"] is None
    assert preview["audience_total"] == 1


async def test_skip_missing_with_no_language_left_is_refused(client, redis):
    desk = await make_desk(client)
    audience = {"all_readers": True, "languages": ["fr"]}
    response = await client.post(
        "/v1/news",
        json=draft(language_policy="skip_missing", audience=audience),
        headers=desk.headers["editor"],
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "no_languages"


async def test_invalid_drafts_are_422(client, redis):
    desk = await make_desk(client)
    bad = [
        draft(title={"en": "no vietnamese"}, body={"en": "x"}),
        draft(title={"vi": "a", "en": "b"}, body={"vi": "a"}),
        draft(audience={"all_readers": True, "sections": ["van-kien"]}),
        draft(audience={}),
        draft(audience={"sections": ["khong-ton-tai"]}),
        draft(language_policy="maybe"),
        draft(image_url="http://insecure.example/a.jpg"),
        draft(ttl_seconds=10),
    ]
    for body in bad:
        response = await client.post("/v1/news", json=body, headers=desk.headers["editor"])
        assert response.status_code == 422, (body, response.text)
