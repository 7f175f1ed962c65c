"""The raw baseline: the provider classes alone (no database, no queue), in as many OS processes as
the pipeline has workers, sending what the pipeline sends.

Like for like with the workers (issue 16): the same provider classes built by the same
`build_providers` (so the same in-flight limits, `fcm_max_in_flight` / `apns_max_in_flight`, and
the same shared pacing through Redis when `pacing_enabled`), the same devices (tokens, the
70/30 provider split and the six-language locale cycle of `support.insert_devices`), the same
payloads (the bench push in all six languages, badge 1 as every bench reader has one unread item)
and, for the mix, FCM and APNs sent concurrently from one batch as `dispatch.send_claimed` does.
The mix is measured by sending it, not computed from the single-provider rates. Once warmed up,
each process tunes its garbage collector as a worker does once started (workers/gc_tuning.py), so
the client's CPU is compared under the same collector.

Each process sends its share in batches of 500 (a send batch), one batch after another: a worker
holds one batch at a time (`send_batches_in_flight` 1), and the whole batch goes to the provider
at once, so the client keeps its full in-flight limit busy (the pipeline's two chunks of 250 are
a pipeline choice this baseline does not copy).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from bench import support

PROVIDER_KEYS = {"fcm": "fcm", "apns": "apns:production"}
TITLE = {
    "vi": "Tin đặc biệt quan trọng: Hội nghị Trung ương khai mạc",
    "en": "Breaking: the plenum opens",
    "zh": "快讯：全会开幕",
    "fr": "Dernière minute : ouverture du plénum",
    "es": "Última hora: se abre el pleno",
    "ru": "Срочно: открылся пленум",
}
BODY = {
    "vi": "Sáng nay, tại Hà Nội, Hội nghị lần thứ mười bốn khai mạc.",
    "en": "The 14th plenum opened in Hanoi this morning.",
    "zh": "第十四次全会今天上午在河内开幕。",
    "fr": "Le 14e plénum s'est ouvert ce matin à Hanoï.",
    "es": "El 14.º pleno se inauguró esta mañana en Hanói.",
    "ru": "Сегодня утром в Ханое открылся 14-й пленум.",
}
BATCH = 500  # one send batch, as the fan-out pages it
START_TIMEOUT = 120.0  # seconds for a process to import, connect and warm up


@dataclass
class Figures:
    label: str
    messages: int
    seconds: float
    client_cpu: float  # the worker processes (pipeline) or the raw processes
    postgres_cpu: float = 0.0
    emulator_cpu: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and the end

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def ms(self, cpu: float) -> float:
        return cpu * 1000 / self.messages if self.messages else 0.0


def phase_devices(phase: str, count: int, fcm_share: float) -> list[int]:
    """The first `count` device numbers of the phase ("fcm", "apns" or "all"), numbered as
    `support.insert_devices` numbers them (its provider split and locale cycle)."""
    fcm_every = round(fcm_share * 100)
    wanted = {"fcm": (True,), "apns": (False,), "all": (True, False)}[phase]
    numbers: list[int] = []
    index = 0
    while len(numbers) < count:
        if ((index % 100) < fcm_every) in wanted:
            numbers.append(index)
        index += 1
        if index > 100 * count + 100:
            raise ValueError(f"no {phase} devices with fcm_share {fcm_share}")
    return numbers


def share(numbers: list[int], part: int, parts: int) -> list[int]:
    size = -(-len(numbers) // parts)
    return numbers[part * size : (part + 1) * size]


async def _send_share(
    numbers: list[int], fcm_every: int, started: Event, ready: Queue[Any]
) -> dict[str, Any]:
    """One raw process: build the providers as a worker does, warm up, wait for the common start,
    send `numbers` in batches of 500 and return its own CPU and counts."""
    from core.config import get_settings
    from core.redis import close_redis
    from notifications.content import PushContent, PushSpec
    from notifications.payloads import render, with_badge
    from notifications.providers.base import Outcome, PushProvider, PushRequest
    from notifications.providers.registry import build_providers, close_providers
    from workers.gc_tuning import tune_for_a_long_lived_process

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
    pushes = {language: with_badge(render(spec, language), 1) for language in TITLE}

    def request(number: int) -> tuple[str, PushRequest]:
        push = pushes[support.LOCALES[number % len(support.LOCALES)]]
        if (number % 100) < fcm_every:
            return PROVIDER_KEYS["fcm"], PushRequest(token=support.fcm_token(number), spec=spec, push=push)
        token = support.apns_token(number)
        return PROVIDER_KEYS["apns"], PushRequest(
            token=token, spec=spec, push=push, apns_environment="production"
        )

    providers = build_providers(get_settings())  # paced as the workers are (`pacing_enabled`)

    async def send(batch: list[int]) -> int:
        groups: dict[str, list[PushRequest]] = {}
        for number in batch:
            key, item = request(number)
            groups.setdefault(key, []).append(item)

        async def one(provider: PushProvider, items: list[PushRequest]) -> int:
            return sum(result.outcome is Outcome.ACCEPTED for result in await provider.send(items))

        # Both providers of a mixed batch at once, as dispatch.send_claimed sends a chunk.
        counts = await asyncio.gather(*(one(providers[key], items) for key, items in groups.items()))
        return sum(counts)

    try:
        # Connections, TLS handshakes and the first tokens are not what is measured.
        await send(numbers[:BATCH])
        # The collector tuned as a worker tunes it once started (workers/gc_tuning.py): the
        # client's CPU is compared with the same collector on both sides.
        tune_for_a_long_lived_process()
        ready.put(os.getpid())
        await asyncio.to_thread(started.wait, START_TIMEOUT)
        cpu, wall = time.process_time(), time.perf_counter()
        accepted = 0
        for start in range(0, len(numbers), BATCH):
            accepted += await send(numbers[start : start + BATCH])
        return {
            "messages": len(numbers),
            "accepted": accepted,
            "cpu": time.process_time() - cpu,
            "seconds": time.perf_counter() - wall,
        }
    finally:
        await close_providers(providers)
        await close_redis()


def _process_main(
    numbers: list[int], fcm_every: int, started: Event, ready: Queue[Any], done: Queue[Any]
) -> None:
    try:
        done.put(asyncio.run(_send_share(numbers, fcm_every, started, ready)))
    except BaseException as exc:  # the parent must hear of it, not wait for a result forever
        ready.put(-1)
        done.put({"error": repr(exc)})
        raise


async def raw_baseline(
    phase: str, count: int, *, processes: int, emulator_pid: int, fcm_share: float = 0.7
) -> Figures:
    """`count` messages of the phase ("fcm", "apns" or "all") from `processes` OS processes at
    once, each sending its share; the time is from the common start to the last one's end."""
    numbers = phase_devices(phase, count, fcm_share)
    context = multiprocessing.get_context("spawn")  # no fork under a running event loop
    started, ready, done = context.Event(), context.Queue(), context.Queue()
    children = [
        context.Process(
            target=_process_main,
            args=(share(numbers, part, processes), round(fcm_share * 100), started, ready, done),
            name=f"raw-{phase}-{part}",
        )
        for part in range(processes)
    ]
    for child in children:
        child.start()
    results: list[dict[str, Any]] = []
    try:
        pids = [await asyncio.to_thread(ready.get, True, START_TIMEOUT) for _ in children]
        if -1 in pids:
            raise RuntimeError(f"raw {phase}: a process failed to start: {done.get(timeout=5)}")
        load = os.getloadavg()[0]
        emulator_before = support.cpu_seconds(emulator_pid)
        wall = time.perf_counter()
        started.set()
        results = [await asyncio.to_thread(done.get, True, 3600) for _ in children]
        seconds = time.perf_counter() - wall
        emulator_cpu = support.cpu_seconds(emulator_pid) - emulator_before
    finally:
        for child in children:
            child.join(timeout=30 if len(results) == len(children) else 0)
            if child.is_alive():
                child.kill()
    errors = [result["error"] for result in results if "error" in result]
    if errors:
        raise RuntimeError(f"raw {phase}: {errors}")
    accepted = sum(result["accepted"] for result in results)
    if accepted != len(numbers):
        raise RuntimeError(f"raw {phase}: only {accepted} of {len(numbers)} accepted")
    return Figures(
        f"raw {phase} ×{processes}",
        len(numbers),
        seconds,
        sum(result["cpu"] for result in results),  # each its own, the measured part only
        emulator_cpu=emulator_cpu,
        load=(load, os.getloadavg()[0]),
    )
