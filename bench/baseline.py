"""The raw baseline (provider classes alone, no database, no queue) and the printed report."""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass

from bench import support

PROVIDER_KEYS = {"fcm": "fcm", "apns": "apns:production"}
TITLE = {"vi": "Tin đặc biệt quan trọng: Hội nghị Trung ương khai mạc", "en": "Breaking: the plenum opens"}
BODY = {
    "vi": "Sáng nay, tại Hà Nội, Hội nghị lần thứ mười bốn khai mạc.",
    "en": "The 14th plenum opened in Hanoi this morning.",
}
BATCH = 500  # one send batch, as the fan-out pages it


@dataclass
class Figures:
    label: str
    messages: int
    seconds: float
    client_cpu: float  # the worker processes (pipeline) or this process (raw)
    postgres_cpu: float = 0.0
    emulator_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def ms(self, cpu: float) -> float:
        return cpu * 1000 / self.messages if self.messages else 0.0


async def raw_baseline(provider_name: str, count: int, emulator_pid: int) -> Figures:
    """The provider class alone, built as the worker builds it: batches of 500, one after another
    (a worker holds one batch at a time), against the same emulator."""
    from core.config import get_settings
    from notifications.content import PushContent, PushSpec
    from notifications.payloads import render
    from notifications.providers.base import Outcome, PushRequest
    from notifications.providers.registry import build_providers, close_providers

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
    token = support.fcm_token if provider_name == "fcm" else support.apns_token
    # Raw means the client alone: no shared pacing (one Redis round trip per batch) either.
    providers = build_providers(get_settings(), paced=False)
    provider = providers[PROVIDER_KEYS[provider_name]]
    try:
        # Connections, TLS handshakes and the first token are not what is measured.
        await provider.send([PushRequest(token=token(i), spec=spec, push=pushes[0]) for i in range(BATCH)])
        cpu, emulator_cpu = time.process_time(), support.cpu_seconds(emulator_pid)
        started = time.perf_counter()
        accepted = 0
        for start in range(0, count, BATCH):
            batch = [
                PushRequest(token=token(i), spec=spec, push=pushes[i % 2])
                for i in range(start, min(count, start + BATCH))
            ]
            accepted += sum(r.outcome is Outcome.ACCEPTED for r in await provider.send(batch))
        figures = Figures(
            f"raw {provider_name}",
            count,
            time.perf_counter() - started,
            time.process_time() - cpu,
            emulator_cpu=support.cpu_seconds(emulator_pid) - emulator_cpu,
        )
    finally:
        await close_providers(providers)
    if accepted != count:
        raise RuntimeError(f"raw {provider_name}: only {accepted} of {count} accepted")
    return figures


def report(
    args: argparse.Namespace, raw: dict[str, Figures], pipeline: dict[str, Figures], rss: list[float]
) -> None:
    print(f"\n## {args.devices:,} devices, {args.workers} worker(s), FCM transport {args.transport}")
    print(f"machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}\n")
    print("| run | messages | seconds | msg/s | client CPU ms/msg | PostgreSQL CPU ms/msg ", end="")
    print("| emulator CPU ms/msg |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for f in [*raw.values(), *pipeline.values()]:
        print(
            f"| {f.label} | {f.messages:,} | {f.seconds:.1f} | {f.rate:,.0f} | {f.ms(f.client_cpu):.3f} "
            f"| {f.ms(f.postgres_cpu):.3f} | {f.ms(f.emulator_cpu):.3f} |"
        )
    if "fcm" in raw and "apns" in raw:
        # Both providers, one after the other: the raw time is the sum of the two raw times.
        seconds = args.fcm_share / raw["fcm"].rate + (1 - args.fcm_share) / raw["apns"].rate
        raw["all"] = Figures("raw fcm+apns", 1, seconds, 0.0)
    print()
    for name, f in pipeline.items():
        print(
            f"{name}: {f.rate:,.0f} deliveries/s; worker CPU {f.ms(f.client_cpu):.3f} ms/delivery; "
            f"pipeline ÷ raw = {f.rate:,.0f} ÷ {raw[name].rate:,.0f} = {f.rate / raw[name].rate:.2f}"
        )
    print(f"peak worker RSS (VmHWM): {', '.join(f'{mb:.0f} MB' for mb in rss)}")
