"""bench.soak end to end at a tiny size, so the script cannot rot: 45 s of every kind of
load with a worker SIGKILLed and a provider outage, then the invariants. Not timed; it checks
that the soak builds its own stack, that the load reached the API (broadcasts through the
four-eyes approval, targeted pushes, inbox reads, sign-ins, registrations), that the faults
happened and recovered, and that the invariants held and were printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.soak import parse_args
from bench.soak_checks import Outcome, bound_for, notification_of
from bench.soak_faults import KINDS, Fault

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_45_seconds_with_a_killed_worker_and_a_provider_outage() -> None:
    argv = [sys.executable, "-m", "bench.soak", "--minutes", "0.75", "--seed", "7", "--devices", "500"]
    # Broadcasts and targeted pushes often enough to be under way at the faults; short leases so
    # the killed worker's batch is picked up again within the test.
    argv += ["--broadcasts", "0.2", "--targeted-pushes", "1", "--sign-ins", "0.3"]
    # At once, not aimed at a broadcast under way (the soak waits for one to a thousand devices).
    argv += ["--faults", "kill_worker,provider_outage", "--fault-gap", "3,5", "--outage-seconds", "5,6"]
    argv += ["--aim-seconds", "0"]
    argv += ["--lease-seconds", "10", "--reconcile-grace-seconds", "1", "--reconcile-every-seconds", "2"]
    finished = subprocess.run(  # noqa: S603
        argv, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600, check=False
    )
    output = finished.stdout
    assert finished.returncode == 0, output[-6000:] + finished.stderr[-3000:]
    line = next(line for line in output.splitlines() if line.startswith("SOAK_RESULT "))
    result = json.loads(line.removeprefix("SOAK_RESULT "))
    assert result["passed"] and all(result["checks"].values())
    assert {fault["kind"] for fault in result["faults"]} == {"kill_worker", "provider_outage"}
    assert all(fault["recovery_seconds"] is not None for fault in result["faults"])
    totals = result["totals"]
    assert totals["broadcasts"] >= 1 and totals["targeted"] >= 5, totals
    assert totals["lost"] == 0 and totals["open_batches"] == 0 and totals["counter_mismatches"] == 0
    assert totals["kills"] >= 1
    operations = result["operations"]
    for name in (
        "register new",
        "inbox unread-count",
        "inbox first page",
        "sign-in",
        "targeted push",
        "news approve",
    ):
        assert operations[name]["requests"] > 0, name
    for heading in ("HTTP operations", "faults", "broadcasts", "targeted pushes", "invariants"):
        assert f"\n{heading}" in output


def test_unknown_fault_kinds_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--faults", "kill_worker,meteor"])
    assert "meteor" in capsys.readouterr().err
    assert parse_args(["--faults", ",".join(KINDS)]).faults.split(",") == list(KINDS)


# --- the checks themselves, without a stack -------------------------------------------------


def outcome(**changes: object) -> Outcome:
    fields: dict[str, object] = {
        "id": "n1",
        "kind": "broadcast",
        "status": "completed",
        "created": 100.0,
        "finished": 200.0,
        "targeted": 3,
        "rows": Counter({"sent": 2, "invalid": 1}),
        "counters": (3, 2, 1, 0),
        "lost": 0,
        "duplicates": 0,
        "bound": 0,
        "open_batches": 0,
        "failed_without_reason": 0,
    }
    return Outcome(**{**fields, **changes})  # type: ignore[arg-type]


def test_an_outcome_fails_on_any_broken_invariant() -> None:
    assert outcome().ok
    assert not outcome(lost=1).ok
    assert not outcome(duplicates=1).ok  # no fault under way: no duplicate allowed
    assert outcome(duplicates=875, bound=875).ok
    assert not outcome(open_batches=1).ok
    assert not outcome(status="sending").ok
    assert not outcome(counters=(3, 3, 0, 0)).ok  # counters that disagree with the rows
    assert not outcome(counters=(4, 2, 1, 0)).ok  # a targeted count without its row


def test_a_fault_bounds_the_notifications_under_way_while_it_lasted() -> None:
    kill = Fault("kill_worker", started=150.0, ended=150.5, recovered=170.0, bound=875)
    outage = Fault("provider_outage", started=300.0, ended=340.0, recovered=345.0, bound=0)
    stuck = Fault("postgres_restart", started=500.0, ended=501.0, recovered=None, bound=1750)
    assert bound_for(100.0, 200.0, [kill, outage, stuck]) == 875
    assert bound_for(160.0, 165.0, [kill]) == 875  # created after the kill, before the recovery
    assert bound_for(171.0, 250.0, [kill, outage]) == 0  # after the recovery: none allowed
    assert bound_for(600.0, 700.0, [stuck]) == 1750  # never recovered: bounds everything after


def test_pushes_are_attributed_to_their_notification_on_both_providers() -> None:
    fcm = {"message": {"token": "t", "data": {"notification_id": "n1", "kind": "breaking_news"}}}
    apns = {"aps": {"alert": {"title": "x"}}, "notification_id": "n2"}
    assert notification_of(fcm) == "n1"
    assert notification_of(apns) == "n2"
    garbage: list[object] = [None, "text", [], {"message": {}}, {"message": {"data": "x"}}, {"aps": {}}]
    for payload in garbage:
        assert notification_of(payload) is None
