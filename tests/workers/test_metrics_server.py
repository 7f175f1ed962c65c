"""Each worker's metrics endpoint (workers/metrics_server.py): on by default, behind the API's
metrics token, one port per process counted up from the configured one."""

from __future__ import annotations

import secrets
import socket

import httpx
import pytest
from pydantic import SecretStr

from core.config import Settings, get_settings
from notifications import cancellation, first_pages
from workers.context import QUEUE_KEY, resources_of
from workers.metrics_server import PORTS_TRIED, start_metrics_server


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no run of free ports")


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = get_settings()
    monkeypatch.setattr(settings, "worker_metrics_port", _free_ports(3))
    monkeypatch.setattr(settings, "worker_metrics_host", "127.0.0.1")
    return settings


def test_worker_metrics_are_on_by_default() -> None:
    assert Settings.model_fields["worker_metrics_port"].default == 9101


async def test_the_endpoint_refuses_a_scrape_without_the_metrics_token(settings, monkeypatch) -> None:
    token = secrets.token_urlsafe(32)
    monkeypatch.setattr(settings, "metrics_token", SecretStr(token))
    server = await start_metrics_server(settings, queue="bulk")
    assert server is not None
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        async with httpx.AsyncClient() as http:
            missing = await http.get(url)
            wrong = await http.get(url, headers={"Authorization": f"Bearer {token}x"})
            right = await http.get(url, headers={"Authorization": f"Bearer {token}"})
    finally:
        await server.close()
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert "chuong_" not in missing.text + wrong.text
    assert right.status_code == 200
    assert right.headers["content-type"].startswith("text/plain")
    assert 'chuong_worker_info{queue="bulk",role="ordinary"} 1.0' in right.text


async def test_a_second_worker_on_the_host_takes_the_next_port(settings) -> None:
    first = await start_metrics_server(settings, queue="high")
    second = await start_metrics_server(settings, queue="high")
    try:
        assert first is not None and second is not None
        assert (first.port, second.port) == (settings.worker_metrics_port, settings.worker_metrics_port + 1)
        async with httpx.AsyncClient() as http:
            for server in (first, second):
                assert (await http.get(f"http://127.0.0.1:{server.port}/metrics")).status_code == 200
    finally:
        for started in (first, second):
            if started is not None:
                await started.close()
    # A port freed by a worker that stopped is taken again by the next one to start.
    again = await start_metrics_server(settings, queue="high")
    assert again is not None and again.port == settings.worker_metrics_port
    await again.close()


async def test_no_free_port_leaves_the_worker_running_without_metrics(settings, monkeypatch) -> None:
    monkeypatch.setattr("workers.metrics_server.PORTS_TRIED", 1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings.worker_metrics_port))
        taken.listen()
        assert await start_metrics_server(settings, queue="high") is None
    assert PORTS_TRIED > 1


async def test_port_zero_turns_it_off(settings, monkeypatch) -> None:
    monkeypatch.setattr(settings, "worker_metrics_port", 0)
    assert await start_metrics_server(settings, queue="high") is None


async def test_the_worker_start_up_serves_its_queue_and_shutdown_closes_it(settings, monkeypatch) -> None:
    from workers.settings import shutdown, startup

    monkeypatch.setattr(settings, "log_json", False)
    ctx: dict = {QUEUE_KEY: "bulk"}
    await startup(ctx)
    server = resources_of(ctx).metrics_server
    assert server is not None
    url = f"http://127.0.0.1:{server.port}/metrics"
    async with httpx.AsyncClient() as http:
        assert 'chuong_worker_info{queue="bulk",role="ordinary"} 1.0' in (await http.get(url)).text
    assert cancellation.hearing(first_pages.CHANNEL)  # announced first pages go to its lane
    await shutdown(ctx)
    # Its first-page handler goes with it: one left behind would send with closed providers.
    assert not cancellation.hearing(first_pages.CHANNEL)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(url)
