"""Issue 13: every line a job logs says which job it was: its arq id, name and try are bound to
the log context for the job's run (workers/context.py), down to the domain code it calls.

A real ``chuong worker`` (a process of its own, so its logging is configured as in
production: JSON lines at INFO) runs a push's jobs from the test's Redis against the test's
database, and its output is read back."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from auth.roles import Role
from core.jobs import JobName
from tests.support.factories import make_account, make_unit, sign_in

ROOT = Path(__file__).resolve().parents[2]


def _worker_until(database_url: str, *, finished: str, also: str, times: int) -> list[str]:
    """Runs ``chuong worker`` until arq reports the job whose id starts with ``finished`` done
    and ``also`` was logged ``times`` times, then stops it as a deployment does (SIGTERM); its
    output, line by line. (A burst worker would wait for the send's retries, deferred by their
    backoff: the push has nowhere to go.)"""
    env = {
        **os.environ,
        "CHUONG_DATABASE_URL": database_url,
        "CHUONG_LOG_JSON": "true",
        "CHUONG_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--queue", "high"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        assert process.stdout is not None
        done = False
        for line in process.stdout:
            lines.append(line)
            done = done or f"← {finished}" in line  # arq's line for a finished job: "0.21s ← <id>:<name> ● …"
            if done and sum(also in seen for seen in lines) >= times:
                break
        process.terminate()
        rest, _ = process.communicate(timeout=30)
        lines.extend(rest.splitlines())
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    return lines


async def test_every_line_a_job_logs_carries_the_job_id_name_and_try(client, database_url) -> None:
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    headers = await sign_in(client, admin)
    device = await client.post(
        "/v1/devices", json={"app": "portal", "platform": "android", "token": "job-logs", "locale": "vi"}
    )
    assert device.status_code == 201, device.text
    created = await client.post(
        "/v1/notifications",
        headers=headers,
        json={
            "app": "portal",
            "kind": "breaking_news",
            "priority": "high",
            "title": {"vi": "Tin"},
            "body": {"vi": "Nội dung"},
            "audience": {"devices": [device.json()["id"]]},
        },
    )
    assert created.status_code == 202, created.text
    notification_id = created.json()["id"]

    # The request's commit queued the fan-out; the worker runs it, then sends its first page (its
    # job, or its announcement: notifications/first_pages.py), which builds the push providers
    # and logs each one that is not configured (none is, here).
    output = await asyncio.to_thread(
        _worker_until,
        database_url,
        finished=f"first:{notification_id}:",
        also="push_provider_not_configured",
        times=2,
    )

    lines: list[dict[str, Any]] = [json.loads(line) for line in output if line.startswith("{")]
    unconfigured = [line for line in lines if line["event"] == "push_provider_not_configured"]
    assert {line["provider"] for line in unconfigured} == {"fcm", "apns"}
    for line in unconfigured:
        assert line["job_name"] == JobName.SEND_BATCH
        # Its first page's job, or its announcement if a worker heard that first
        # (notifications/first_pages.py).
        assert line["job_id"].startswith((f"first:{notification_id}:", f"announced:{notification_id}:"))
        assert line["job_try"] == 1
    # Nothing in the worker logs outside a job but its start-up line (where its metrics listen):
    # every other line names one.
    started = [line for line in lines if line["event"] == "worker_metrics_listening"]
    assert [(line["queue"], line["host"]) for line in started] == [("high", "127.0.0.1")]
    for line in lines:
        if line in started:
            continue
        assert line.get("job_id") and line.get("job_name") in set(JobName) and line.get("job_try"), line
