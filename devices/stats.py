"""Device counts per app, platform and language, live and invalidated (the console's statistics
page shows them). A read-only aggregate over the registry: counts only, no tokens, no owners."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from devices.models import Device


@dataclass(frozen=True)
class DeviceCount:
    app: str
    platform: str
    locale: str
    live: int
    invalid: int

    @property
    def total(self) -> int:
        return self.live + self.invalid

    @property
    def invalid_rate(self) -> float:
        return self.invalid / self.total if self.total else 0.0


async def device_counts(session: AsyncSession) -> list[DeviceCount]:
    invalid = func.count().filter(Device.invalidated_at.is_not(None))
    live = func.count().filter(Device.invalidated_at.is_(None))
    rows = await session.execute(
        select(Device.app, Device.platform, Device.locale, live, invalid)
        .group_by(Device.app, Device.platform, Device.locale)
        .order_by(Device.app, Device.platform, Device.locale)
    )
    return [
        DeviceCount(app, platform, locale, int(n_live), int(n_invalid))
        for app, platform, locale, n_live, n_invalid in rows
    ]


def totals_by(counts: list[DeviceCount], key: str) -> dict[str, DeviceCount]:
    """Roll the (app, platform, locale) rows up to one dimension."""
    rolled: dict[str, tuple[int, int]] = {}
    for count in counts:
        name = getattr(count, key)
        live, invalid = rolled.get(name, (0, 0))
        rolled[name] = (live + count.live, invalid + count.invalid)
    return {
        name: DeviceCount(
            app=name if key == "app" else "*",
            platform=name if key == "platform" else "*",
            locale=name if key == "locale" else "*",
            live=live,
            invalid=invalid,
        )
        for name, (live, invalid) in sorted(rolled.items())
    }
