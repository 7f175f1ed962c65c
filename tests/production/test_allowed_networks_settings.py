"""CHUONG_ALLOWED_NETWORKS in production (core/production.py): unset is allowed but warned about
at every start (the service cannot tell a deployment only the agencies' VPN reaches from one on
the Internet); a rule that admits any address is refused."""

from __future__ import annotations

from typing import Any

from core.config import Settings
from core.production import production_problems, production_warnings


def settings_of(values: dict[str, Any]) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _network_warnings(settings: Settings) -> list[str]:
    return [w for w in production_warnings(settings) if w.startswith("CHUONG_ALLOWED_NETWORKS")]


def test_no_rule_in_production_is_warned_about_not_refused(production_values) -> None:
    assert _network_warnings(settings_of(production_values)) == []
    open_to_all = {**production_values, "allowed_networks": {}}
    [warning] = _network_warnings(settings_of(open_to_all))
    assert warning.startswith("CHUONG_ALLOWED_NETWORKS: not set")
    assert production_problems(settings_of(open_to_all)) == []
    assert _network_warnings(settings_of({**open_to_all, "environment": "development"})) == []


def test_a_rule_that_admits_any_address_stops_production(production_values) -> None:
    for anywhere in ("0.0.0.0/0", "::/0"):
        rules = {"users:write": ["10.20.0.0/16", anywhere]}
        problems = production_problems(settings_of({**production_values, "allowed_networks": rules}))
        assert problems == [
            f"CHUONG_ALLOWED_NETWORKS: 'users:write' lists {anywhere}, which admits any address"
        ]
