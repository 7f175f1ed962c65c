"""The read surge's routers are included first (api/app.py), so their requests are matched
without trying every other route; that is only harmless while no other route's path starts
with their prefixes."""

from __future__ import annotations

from fastapi.routing import APIRoute, iter_route_contexts

from api.routers import devices, inbox

FIRST = {"/v1/inbox": inbox.router, "/v1/devices": devices.router}


def test_no_other_route_shares_the_prefixes_of_the_routers_matched_first(app):
    for prefix, router in FIRST.items():
        own = {prefix + route.path for route in router.routes if isinstance(route, APIRoute)}
        assert own, f"no routes found under {prefix}"
        for context in iter_route_contexts(app.router.routes):
            path = context.path or ""
            if isinstance(context.original_route, APIRoute) and path.startswith(prefix):
                assert path in own, f"{path} (not the {prefix} router's) would be shadowed by it"
