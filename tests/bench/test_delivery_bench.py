"""bench.delivery end to end at a tiny size: provider latency on, two workers against two raw
processes. Not timed: it checks that the tool measures what it says (every phase on both sides,
the raw shares, the latency really applied), not how fast anything is."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
LATENCY_MS = 500.0
# fcm_max_in_flight and apns_max_in_flight: the defaults both sides use (the same for both).
IN_FLIGHT = min(Settings.model_fields[name].default for name in ("fcm_max_in_flight", "apns_max_in_flight"))

pytestmark = pytest.mark.slow


def drop_database(name: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def test_two_workers_against_two_raw_processes_with_provider_latency() -> None:
    database = f"chuong_bench_t{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "bench.delivery", "--devices", "2000", "--workers", "2"]
    argv += ["--latency-ms", str(LATENCY_MS), "--raw-messages", "1000", "--database", database]
    try:
        finished = subprocess.run(  # noqa: S603
            argv, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600, check=False
        )
    finally:
        drop_database(database)
    assert finished.returncode == 0, finished.stderr[-3000:]
    line = next(line for line in finished.stdout.splitlines() if line.startswith("FIGURES "))
    figures = json.loads(line.removeprefix("FIGURES "))
    assert figures["workers"] == 2 and figures["latency_ms"] == LATENCY_MS
    phases = figures["phases"]
    assert set(phases) == {"fcm", "apns", "all"}
    # 2,000 devices, 70/30: the baseline sends min(1,000, the phase's devices), split over 2 processes.
    assert {name: phase["raw_messages"] for name, phase in phases.items()} == {
        "fcm": 1000,
        "apns": 600,
        "all": 1000,
    }
    for name, phase in phases.items():
        # Each raw process sends 300-500 messages with IN_FLIGHT in flight: at least ceil(share / IN_FLIGHT)
        # round trips of 500 ms one after another (the mix: its 350 FCM messages), so the latency
        # shows in the time. Without it (the tool not wiring it) a 500-message FCM share takes
        # about 0.3 s, even on a loaded machine.
        share = {"fcm": 500, "apns": 300, "all": 350}[name]
        assert phase["raw_seconds"] >= math.ceil(share / IN_FLIGHT) * LATENCY_MS / 1000 * 0.95, (name, phase)
        assert phase["pipeline_seconds"] >= LATENCY_MS / 1000, (name, phase)
        assert phase["ratio"] == pytest.approx(phase["pipeline_rate"] / phase["raw_rate"], rel=0.01)
        assert phase["worker_cpu_ms"] > 0 and phase["raw_cpu_ms"] > 0
    assert "| raw all ×2 | 1,000 |" in finished.stdout
    assert "| pipeline all | 2,000 |" in finished.stdout
