import uuid


async def test_health_and_readiness_check_postgres_and_redis(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_metrics_count_requests_by_route_template(client):
    await client.get(f"/v1/users/{uuid.uuid4()}")
    body = (await client.get("/metrics")).text
    assert 'route="/v1/users/{user_id}"' in body
    assert "chuong_http_request_duration_seconds_bucket" in body


async def test_responses_carry_a_request_id_and_security_headers(client):
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.headers["x-content-type-options"] == "nosniff"
    generated = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"
