"""The alert rules (deploy/prometheus/alerts.yml) under promtool, from Debian's prometheus package
(scripts/dev.sh installs it: a missing promtool fails, never skips): they load, and every alert
fires on the series of alerts.test.yml or alerts.maintenance.test.yml meant to fire it and stays
quiet on those meant not to. Each rule has a severity, a plain summary and a runbook link to its
section of docs/operations.md ("Incidents"), and names only metrics the service exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Two files: the maintenance alerts span days and are evaluated hourly there (minutes otherwise).
RULE_TESTS = [
    ROOT / "deploy" / "prometheus" / name for name in ("alerts.test.yml", "alerts.maintenance.test.yml")
]
DOCS = ROOT / "docs" / "operations.md"
RUNBOOK_PREFIX = "{{ $externalLabels.runbook_base }}/docs/operations.md#"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/dev.sh installs Debian's prometheus package"
    return subprocess.run(  # noqa: S603 - Debian's promtool on the repository's files
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False, cwd=RULES.parent
    )


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    done = _promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    done = _promtool("test", "rules", *(path.name for path in RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_case_that_fires_it_and_one_that_does_not() -> None:
    cases: dict[str, set[bool]] = {}
    tests = [
        test for path in RULE_TESTS for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
    ]
    for test in tests:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    alerts = [rule["alert"] for rule in _rules()]
    assert len(alerts) == len(set(alerts))
    untested = {
        alert: sorted(cases.get(alert, set())) for alert in alerts if cases.get(alert) != {True, False}
    }
    assert not untested, f"alerts without both a firing and a quiet case (fires?): {untested}"


def test_every_rule_has_a_severity_a_summary_and_a_runbook_section() -> None:
    sections = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", DOCS.read_text(encoding="utf-8"), re.MULTILINE)
    }
    for rule in _rules():
        name = rule["alert"]
        assert name.startswith("Chuong"), name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        assert annotations["runbook_url"] == RUNBOOK_PREFIX + name.lower(), name
        assert name.lower() in sections, f"docs/operations.md has no section for {name}"


def _sample_names(family: Metric) -> set[str]:
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("_count", "_sum", ""),
        "info": ("_info",),
    }.get(family.type, ("",))
    return {family.name + suffix for suffix in suffixes}


@pytest.fixture
def exported_names() -> set[str]:
    """What the API and the workers export: every metric their modules register, and the
    service-wide figures the API adds (notifications/figures.py), from a sample snapshot."""
    import api.routers.health  # noqa: F401 - registers the figures and the dependency checks
    import cli.asgi  # noqa: F401 - the API app and everything it imports
    import workers.settings  # noqa: F401 - the workers' jobs and their metrics server
    from core import clock
    from notifications import backlog, breaker, figures

    collector = figures.FiguresCollector()
    collector._figures = figures.Figures(
        computed_at=clock.utcnow().timestamp(),
        due=[backlog.DueWork("normal", 1, 1, 1.0)],
        fanouts_running=1,
        fanout_lag_seconds=1.0,
        maintenance=[figures.MaintenanceTimes("audit_verify", "", 1.0, 1.0)],
    )
    collector._breakers = [breaker.BreakerState("fcm", 1, 1, 1.0, True, None)]
    names: set[str] = set()
    for family in [*REGISTRY.collect(), *collector.collect()]:
        names |= _sample_names(family)
    return names


def test_the_rules_name_only_metrics_the_service_exports(exported_names: set[str]) -> None:
    named = {name for rule in _rules() for name in re.findall(r"\bchuong_[a-z_]+\b", rule["expr"])}
    assert named, "no metric named"
    unknown = sorted(named - exported_names)
    assert not unknown, f"the rules name metrics nothing exports: {unknown}"


def _anchor(heading: str) -> str:
    """The anchor a Markdown renderer (GitHub's, GitLab's) gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_runbook_link_opens_a_section_of_the_incidents_part_of_operations_md() -> None:
    text = DOCS.read_text(encoding="utf-8")
    incidents = text[text.index("\n## Incidents\n") :]
    incidents = incidents[: incidents.index("\n## ", 1)]
    anchors = [_anchor(heading) for heading in re.findall(r"^#+ (.+)$", incidents, re.MULTILINE)]
    for rule in _rules():
        path, _, anchor = (
            rule["annotations"]["runbook_url"]
            .removeprefix("{{ $externalLabels.runbook_base }}/")
            .partition("#")
        )
        assert (ROOT / path).resolve() == DOCS.resolve(), rule["alert"]
        assert anchors.count(anchor) == 1, f"{rule['alert']}: no single section #{anchor} under Incidents"
    # Each runbook says who gets the alert, what to check first and the fix.
    for rule in _rules():
        section = incidents[incidents.index(f"#### {rule['alert']}\n") :]
        section = section[: section.index("\n#", 1)]
        assert "**Check first:**" in section and "**Fix:**" in section, rule["alert"]
        who = {"critical": "on-call engineer", "warning": "operators"}[rule["labels"]["severity"]]
        assert who in section.split("\n", 2)[2].split(".")[0], f"{rule['alert']} does not say who gets it"
