"""The Grafana dashboard (deploy/grafana/chuong.json): a Grafana dashboard model whose panels all
read the Prometheus datasource chosen in its `datasource` variable, and whose every metric is
exported by the running service: a real API and a real worker, after a real push through the
emulator, scraped with the metrics token as Prometheus scrapes them. A panel naming a metric that
nothing exports (a typo, a renamed metric) would stay empty in production without a word."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live_stack import LiveStack, live_stack
from tests.support.promql import base_names, metric_names, variable_query_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "chuong.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Series Prometheus makes for each target itself: no process exports them.
PROMETHEUS_MADE = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
)
GRAFANA_BUILTINS = frozenset({"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"})


def _dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expression) of every panel target, and (variable, query) of every query variable."""
    queries = [
        (f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(
                (f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query)
            )
    return queries


def test_the_dashboard_is_a_grafana_model_on_a_templated_prometheus_datasource() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "chuong-overview" and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["id"] is None  # Grafana assigns it; a fixed one clashes on import
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]

    panels = _panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] >= 1 and grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"panel {panel['title']!r} overlaps another"
        cells |= covered
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat", "table", "gauge", "bargauge"), panel["type"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel.get("description"), f"panel {panel['title']!r} says nothing of how to read it"
        targets = panel["targets"]
        assert targets, panel["title"]
        assert len({target["refId"] for target in targets}) == len(targets), panel["title"]
        for target in targets:
            assert target["datasource"] == DATASOURCE and target["expr"].strip(), panel["title"]

    # Every $variable a query uses is defined (or one of Grafana's own).
    for where, expr in _queries(dashboard):
        for name in re.findall(r"\$\{?(\w+)", expr):
            assert name in variables or name in GRAFANA_BUILTINS, f"{where} uses undefined ${name}"


def test_the_lexer_reads_the_metric_names_of_an_expression() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, provider) (rate(foo_seconds_bucket{provider=~"$provider",'
        ' route!~".*/(stream|progress)"}[$__rate_interval])))'
        " / on (provider) group_left (x) max without (instance) (bar_total offset 5m)"
        ' and ignoring (job) 1e3 * baz{__name__!="", a="sum(qux)"}[10m:1m]'
        ' or vector(0) unless {__name__="named_by_matcher", job="x"} > bool 0x1f'
    )
    assert metric_names(expr) == {"foo_seconds_bucket", "bar_total", "baz", "named_by_matcher"}
    assert metric_names("time() - max(ts_seconds)") == {"ts_seconds"}
    assert variable_query_names("label_values(chuong_worker_info, job)") == {"chuong_worker_info"}
    assert variable_query_names('label_values(up{job="x"}, instance)') == {"up"}
    assert base_names("foo_seconds_bucket", {"foo_seconds"}) == {"foo_seconds_bucket", "foo_seconds"}
    assert base_names("foo_count", set()) == {"foo_count"}  # not a histogram: a name of its own


def _exported(expositions: list[str]) -> tuple[set[str], set[str], set[str]]:
    """(names a scrape can match, histogram families, names with at least one sample)."""
    names: set[str] = set()
    histograms: set[str] = set()
    sampled: set[str] = set()
    for text in expositions:
        for family in text_string_to_metric_families(text):
            # A family declared with no sample yet (a labelled counter never incremented) is still
            # exported: its series appear with the first event.
            names.add(family.name)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                histograms.add(family.name)
            for sample in family.samples:
                names.add(sample.name)
                sampled.add(sample.name)
    return names, histograms, sampled


def unknown_metrics(dashboard: dict[str, Any], expositions: list[str]) -> dict[str, list[str]]:
    """Per query, the metric names nothing in ``expositions`` exports."""
    names, histograms, _ = _exported(expositions)
    unknown = {}
    for where, expr in _queries(dashboard):
        read = variable_query_names(expr) if where.startswith("variable") else metric_names(expr)
        missing = sorted(
            name for name in read if name not in PROMETHEUS_MADE and not base_names(name, histograms) & names
        )
        if missing:
            unknown[where] = missing
    return unknown


async def _scrape(http: httpx.AsyncClient, stack: LiveStack) -> tuple[str, str]:
    api = await http.get(f"{stack.api_url}/metrics", headers=stack.metrics_headers)
    worker = await http.get(stack.worker_metrics_url, headers=stack.metrics_headers)
    assert api.status_code == worker.status_code == 200
    return api.text, worker.text


async def test_every_metric_on_the_dashboard_is_exported_by_the_running_api_or_worker(
    database_url, redis, tmp_path
) -> None:
    async with live_stack(database_url, tmp_path) as stack, httpx.AsyncClient(timeout=30) as http:
        devices = await stack.register_fcm_devices(http, 3)
        await stack.push(http, devices)
        wrong = await http.post(
            f"{stack.api_url}/v1/auth/login", json={"username": "nobody-here", "password": "wrong password 1"}
        )
        assert wrong.status_code == 401, wrong.text
        # Until the worker has counted the push as sent and the API shows the backlog figures.
        deadline = time.monotonic() + 60
        while True:
            api, worker = await _scrape(http, stack)
            _, _, sampled = _exported([api, worker])
            wanted = {"chuong_push_deliveries_total", "chuong_outbox_due_deliveries"}
            if wanted <= sampled and 'outcome="sent",provider="fcm"' in worker:
                break
            assert time.monotonic() < deadline, (
                f"no delivery counted: {sorted(wanted - sampled)}\n{stack.logs()}"
            )
            await asyncio.sleep(0.5)
        # Bad token: the endpoints answer nothing to a scrape without it.
        assert (await http.get(stack.worker_metrics_url)).status_code == 401
        assert (await http.get(f"{stack.api_url}/metrics")).status_code == 401

    dashboard = _dashboard()
    assert unknown_metrics(dashboard, [api, worker]) == {}
    # The push produced the series the delivery and latency panels draw, in the worker; the
    # requests and the failed sign-in, the API's.
    for name in (
        "chuong_push_provider_request_duration_seconds_bucket",
        "chuong_worker_info",
        "chuong_http_request_duration_seconds_bucket",
        "chuong_signin_failures_total",
        "chuong_outbox_oldest_due_age_seconds",
        "chuong_dependency_up",
    ):
        assert name in sampled, name
    # Every name read is checked: one nothing exports is reported, in its panel and in a variable.
    planted = copy.deepcopy(dashboard)
    panel = next(panel for panel in _panels(planted) if panel["title"] == "Deliveries by outcome")
    panel["targets"][0]["expr"] = panel["targets"][0]["expr"].replace(
        "chuong_push_deliveries_total", "chuong_push_delivery_total"
    )
    planted["templating"]["list"].append(
        {"name": "typo", "type": "query", "query": {"query": "label_values(chuong_worker_infos, job)"}}
    )
    assert unknown_metrics(planted, [api, worker]) == {
        "panel 'Deliveries by outcome' A": ["chuong_push_delivery_total"],
        "variable typo": ["chuong_worker_infos"],
    }
    # A histogram suffix is accepted on histograms only.
    panel["targets"][0]["expr"] = "rate(chuong_worker_info_bucket[5m])"
    planted["templating"]["list"].pop()
    assert unknown_metrics(planted, [api, worker]) == {
        "panel 'Deliveries by outcome' A": ["chuong_worker_info_bucket"]
    }
