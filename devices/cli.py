"""``chuong devices registrations`` and ``chuong devices purge``: a registration flood seen and
cleaned up from the server's shell (the same domain functions as the API's
``/v1/devices/anonymous-registrations`` routes; the purge is audited as a system action)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from typing import Annotated

import typer

from core.db import dispose_engine, transaction, utcnow
from core.netaddr import Network
from core.progress import track
from devices import floods

app = typer.Typer(help="Anonymous device registrations (floods).", no_args_is_help=True)


def _network(value: str) -> Network:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise typer.BadParameter(f"not a network prefix: {value}") from exc


def _window(since_minutes: int, until: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    end = until.astimezone(dt.UTC) if until and until.tzinfo else (until or utcnow()).replace(tzinfo=dt.UTC)
    return end - dt.timedelta(minutes=since_minutes), end


SinceMinutes = Annotated[int, typer.Option(min=1, max=60 * 24 * 90, help="Window length in minutes")]
Until = Annotated[
    dt.datetime | None, typer.Option(help="Window end, UTC unless an offset is given (default: now)")
]


@app.command("registrations")
def registrations(
    since_minutes: SinceMinutes = 60,
    until: Until = None,
    within: Annotated[str | None, typer.Option(help="Only networks inside this prefix")] = None,
) -> None:
    """Anonymous registrations per network in the window, busiest first."""
    since, end = _window(since_minutes, until)
    rows = asyncio.run(_registrations(since, end, _network(within) if within else None))
    typer.echo(f"{'network':<44} {'registered':>10} {'unproven':>9}  first .. last (UTC)")
    for row in rows:
        typer.echo(
            f"{row.network or '(unknown)'!s:<44} {row.registrations:>10} {row.unproven:>9}"
            f"  {row.first_at:%Y-%m-%d %H:%M} .. {row.last_at:%H:%M}"
        )


async def _registrations(
    since: dt.datetime, until: dt.datetime, within: Network | None
) -> list[floods.NetworkRegistrations]:
    try:
        async with transaction() as session:
            return await floods.registrations_by_network(session, since=since, until=until, within=within)
    finally:
        await dispose_engine()


@app.command("purge")
def purge(
    network: Annotated[str, typer.Option(help="Prefix the devices registered from, e.g. 203.0.113.0/24")],
    since_minutes: SinceMinutes = 60,
    until: Until = None,
    yes: Annotated[bool, typer.Option("--yes", help="Delete; without it, only count")] = False,
) -> None:
    """Delete the anonymous devices registered from NETWORK in the window that never came back
    with their credential. Without --yes it only counts them."""
    since, end = _window(since_minutes, until)
    with track(f"{'purging' if yes else 'counting'} the devices registered from {network}"):
        count = asyncio.run(_purge(_network(network), since, end, dry_run=not yes))
    verb = "purged" if yes else "would purge (run again with --yes)"
    typer.echo(f"{verb}: {count} devices registered from {network} between {since:%H:%M} and {end:%H:%M} UTC")


async def _purge(network: Network, since: dt.datetime, until: dt.datetime, *, dry_run: bool) -> int:
    try:
        async with transaction() as session:
            return await floods.purge_unproven(
                session, network=network, since=since, until=until, dry_run=dry_run
            )
    finally:
        await dispose_engine()
