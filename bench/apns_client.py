"""The APNs client alone, side by side: the provider as it was before issue 16 (a task, a
`wait_for`, a payload dict and a uuid4 per message, through aioapns' own request building) and
the shipped one (notifications/providers/apns.py: prepared pushes, lanes), same process, same
emulator, alternating rounds.

    .venv/bin/python -m bench.apns_client [--messages 20000] [--rounds 3] [--latencies 0,40]

Prints CPU µs per message of this process (the client; the emulator runs in its own process)
and msg/s for each, and the shipped ÷ unchanged CPU ratio per round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from aioapns import APNs, NotificationRequest, PushType
from aioapns.common import NotificationResult
from aioapns.exceptions import ConnectionClosed, MaxAttemptsExceeded
from aioapns.exceptions import ConnectionError as APNsConnectionError

from bench import support
from bench.baseline import BATCH, BODY, TITLE
from notifications.cancellation import stopped
from notifications.payloads import apns_payload, apns_priority
from notifications.providers.apns import classify
from notifications.providers.base import STOPPED, Outcome, PushProvider, PushRequest, SendResult


async def _quiet(request: NotificationRequest, result: NotificationResult) -> None:
    """aioapns logs every failure at ERROR."""


class UnchangedApnsProvider:
    """notifications/providers/apns.py as of 7f4373f (before issue 16), minus its metrics."""

    name = "apns"

    def __init__(self, client: APNs, *, timeout: float, max_in_flight: int) -> None:
        self.client = client
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_in_flight)
        client.err_func = _quiet

    async def _send_one(self, request: PushRequest) -> SendResult:
        notification = NotificationRequest(
            device_token=request.token,
            message=apns_payload(request.spec, request.push),
            notification_id=str(uuid.uuid4()),
            time_to_live=request.spec.ttl_left(),
            priority=apns_priority(request.spec, request.push),
            collapse_key=request.spec.content.collapse_key,
            push_type=PushType.ALERT if request.push.title is not None else PushType.BACKGROUND,
        )
        try:
            async with self._slots:
                if stopped(request.spec.id):
                    return STOPPED
                started = time.perf_counter()
                try:
                    result = await asyncio.wait_for(self.client.send_notification(notification), self.timeout)
                finally:
                    _ = time.perf_counter() - started  # the shipped one observes a histogram here
        except TimeoutError:
            return SendResult(Outcome.RETRY, error_code="timeout")
        except (ConnectionError, OSError, APNsConnectionError, ConnectionClosed, MaxAttemptsExceeded) as exc:
            return SendResult(Outcome.RETRY, error_code=f"transport:{type(exc).__name__}"[:64])
        return classify(result)

    async def send(self, requests: Sequence[PushRequest]) -> list[SendResult]:
        return list(await asyncio.gather(*(self._send_one(r) for r in requests)))

    async def close(self) -> None:
        self.client.pool.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.apns_client", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latencies", default="0,40", help="comma-separated, ms added by the emulator")
    return parser.parse_args()


def _build(kind: str) -> PushProvider:
    from pathlib import Path as _Path

    from core.config import get_settings
    from notifications.providers.apns import ApnsProvider
    from notifications.providers.apns_client import apns_client
    from notifications.providers.tls import provider_ssl_context

    settings = get_settings()
    assert settings.apns_key_file and settings.apns_key_id and settings.apns_team_id and settings.apns_topic
    client = apns_client(
        key=_Path(settings.apns_key_file).read_text(encoding="utf-8"),
        key_id=settings.apns_key_id,
        team_id=settings.apns_team_id,
        topic=settings.apns_topic,
        use_sandbox=False,
        max_connections=settings.apns_max_connections,
        ssl_context=provider_ssl_context(settings.provider_ca_file) if settings.provider_ca_file else None,
        endpoint_host=settings.apns_endpoint_host,
        endpoint_port=settings.apns_endpoint_port,
    )
    timeout, in_flight = settings.apns_timeout_seconds, settings.apns_max_in_flight
    if kind == "unchanged":
        return UnchangedApnsProvider(client, timeout=timeout, max_in_flight=in_flight)
    return ApnsProvider(client, timeout=timeout, max_in_flight=in_flight)


async def _measure(provider: PushProvider, requests: list[PushRequest]) -> tuple[float, float]:
    """CPU seconds and wall seconds for sending ``requests`` in batches of 500, one after another."""
    cpu, started = time.process_time(), time.perf_counter()
    accepted = 0
    for start in range(0, len(requests), BATCH):
        sent = await provider.send(requests[start : start + BATCH])
        accepted += sum(result.outcome is Outcome.ACCEPTED for result in sent)
    if accepted != len(requests):
        raise RuntimeError(f"only {accepted} of {len(requests)} accepted")
    return time.process_time() - cpu, time.perf_counter() - started


async def run(args: argparse.Namespace, control_url: str) -> None:
    import httpx

    from notifications.content import PushContent, PushSpec
    from notifications.payloads import render

    spec = PushSpec(
        id="00000000-0000-0000-0000-000000000042",
        content=PushContent(
            kind="breaking_news",
            priority="high",
            sensitivity="public",
            title=TITLE,
            body=BODY,
            data={"article_id": "a-1"},
            deep_link="chuong-portal://article/a-1",
            collapse_key="a-1",
        ),
    )
    pushes = [render(spec, "vi"), render(spec, "en")]
    requests = [
        PushRequest(token=support.apns_token(i), spec=spec, push=pushes[i % 2]) for i in range(args.messages)
    ]
    providers = {kind: _build(kind) for kind in ("unchanged", "shipped")}
    print(f"load average {os.getloadavg()}")
    print("| round | latency ms | client | CPU µs/msg | msg/s |")
    print("|---:|---:|---|---:|---:|")
    try:
        for provider in providers.values():  # connections, TLS, the first JWT: not measured
            await _measure(provider, requests[:BATCH])
        for latency in [float(ms) for ms in args.latencies.split(",")]:
            async with httpx.AsyncClient() as control:
                (await control.put(f"{control_url}/faults", json={"latency_ms": latency})).raise_for_status()
            for round_number in range(1, args.rounds + 1):
                cpu_per: dict[str, float] = {}
                order = list(providers) if round_number % 2 else list(reversed(providers))
                for kind in order:
                    cpu, wall = await _measure(providers[kind], requests)
                    cpu_per[kind] = cpu / len(requests)
                    print(
                        f"| {round_number} | {latency:g} | {kind} | {cpu_per[kind] * 1e6:.0f} "
                        f"| {len(requests) / wall:,.0f} |",
                        flush=True,
                    )
                print(f"  shipped ÷ unchanged CPU: {cpu_per['shipped'] / cpu_per['unchanged']:.2f}")
    finally:
        for provider in providers.values():
            await provider.close()
    print(f"load average {os.getloadavg()}")


def main() -> None:
    args = parse_args()
    emulator = support.EmulatorProcess.start(Path(tempfile.mkdtemp(prefix="chuong-bench-")) / "ca.pem")
    os.environ.update(emulator.env())
    os.environ.setdefault("CHUONG_LOG_LEVEL", "WARNING")
    try:
        asyncio.run(run(args, str(emulator.addresses["control_url"])))
    finally:
        support.stop([emulator.process])


if __name__ == "__main__":
    main()
