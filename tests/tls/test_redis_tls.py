"""TLS to Redis (a rediss:// CHUONG_REDIS_URL and CHUONG_REDIS_SSL_*, core/tls.py), against a real
redis-server that speaks only TLS, with a certificate for "localhost" from a test CA. Every kind
of connection the service opens is tried: the shared client, a connection of its own (the pub/sub
listeners), the rate limiter on the shared pool, and arq's pool. Another CA, or another host name
than the certificate's, is refused; a server that asks for client certificates gets one."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from arq import create_pool
from redis.exceptions import ConnectionError as RedisConnectionError

from auth import ratelimit
from core import redis as core_redis
from core.config import get_settings
from tests.support.tls import CertFiles, ScratchRedis, issue, scratch_tls_redis
from workers.queue import redis_settings

# Its module fixture (built once) is expensive: under pytest-xdist, its tests share one worker.
pytestmark = pytest.mark.xdist_group("redis_tls")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_certificate(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return issue(tmp_path_factory.mktemp("redis-tls"), ca, "localhost")


@pytest.fixture(scope="module")
def tls_redis(server_certificate: CertFiles) -> Iterator[ScratchRedis]:
    with scratch_tls_redis(server_certificate) as server:
        yield server


@pytest.fixture
async def use_redis(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Settings point at the scratch server; the process's shared client is rebuilt from them."""
    await core_redis.close_redis()
    yield
    await core_redis.close_redis()
    monkeypatch.undo()


def point_at(monkeypatch: pytest.MonkeyPatch, url: str, **files: Path) -> None:
    monkeypatch.setattr(get_settings(), "redis_url", url)
    for name, path in files.items():
        monkeypatch.setattr(get_settings(), f"redis_ssl_{name}", str(path))


async def arq_ping() -> bool:
    # No retries: a refusal is the answer, not a reason to wait.
    pool = await create_pool(dataclasses.replace(redis_settings(), conn_retries=0))
    try:
        return bool(await pool.ping())
    finally:
        await pool.aclose()


@pytest.mark.usefixtures("use_redis")
async def test_every_client_of_the_service_talks_verified_tls(
    tls_redis, server_certificate, monkeypatch
) -> None:
    point_at(monkeypatch, tls_redis.url("localhost"), ca_file=server_certificate.ca)

    assert await core_redis.get_redis().ping()
    own = core_redis.new_redis_client(decode_responses=True)  # what each pub/sub listener opens
    try:
        pubsub = own.pubsub()
        await pubsub.subscribe("chuong:test:tls")
        assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"
        await core_redis.get_redis().publish("chuong:test:tls", "hello")
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        assert message is not None and message["data"] == "hello"
        await pubsub.aclose()
    finally:
        await own.aclose()

    # The rate limiter fails open on Redis errors, so its counter is looked for, not assumed.
    client = f"tls-{uuid.uuid4().hex}"
    await ratelimit.enforce_client(client)
    assert [key async for key in core_redis.get_redis().scan_iter(match=f"*client:{client}*")]

    assert await arq_ping()
    assert redis_settings().ssl_check_hostname is True


@pytest.mark.usefixtures("use_redis")
async def test_a_certificate_from_another_ca_is_refused(tls_redis, monkeypatch, tmp_path) -> None:
    point_at(monkeypatch, tls_redis.url("localhost"), ca_file=issue(tmp_path, trustme.CA(), "localhost").ca)

    with pytest.raises(RedisConnectionError, match="certificate verify failed"):
        await core_redis.new_redis_client().ping()
    with pytest.raises(Exception, match="certificate verify failed"):
        await arq_ping()


@pytest.mark.usefixtures("use_redis")
async def test_a_certificate_for_another_host_name_is_refused(
    tls_redis, server_certificate, monkeypatch
) -> None:
    # The certificate names "localhost"; 127.0.0.1 is the same server under another name, which
    # redis-py and arq would both accept if the host name were not checked (their default).
    point_at(monkeypatch, tls_redis.url("127.0.0.1"), ca_file=server_certificate.ca)

    with pytest.raises(RedisConnectionError, match="mismatch"):
        await core_redis.new_redis_client().ping()
    with pytest.raises(Exception, match="mismatch"):
        await arq_ping()


@pytest.mark.usefixtures("use_redis")
async def test_a_server_that_asks_for_a_client_certificate_gets_one(ca, tmp_path, monkeypatch) -> None:
    server = issue(tmp_path / "server", ca, "localhost")
    client = issue(tmp_path / "client", ca, "chuong-worker", stem="client")
    with scratch_tls_redis(server, client_certificates=True) as tls_redis:
        point_at(monkeypatch, tls_redis.url("localhost"), ca_file=server.ca)
        with pytest.raises(RedisConnectionError):
            await core_redis.new_redis_client().ping()

        point_at(monkeypatch, tls_redis.url("localhost"), cert_file=client.cert, key_file=client.key)

        assert await core_redis.new_redis_client().ping()
        assert await arq_ping()
