"""The daily purge (a cron job, workers/settings.py): stale devices, and what the outbox keeps of
notifications finished more than 30 days ago. One transaction; each purge lives next to what
it purges (devices/service.py, notifications/outbox.py)."""

from __future__ import annotations

import datetime as dt

from core.after_commit import committing
from core.db import allow_long_statements
from devices import service as devices
from notifications import outbox


async def purge(*, now: dt.datetime) -> dict[str, int]:
    async with committing() as session:
        # Millions of rows at a time at full scale: inside the job's 600 s, not the 30 s bound.
        await allow_long_statements(session, seconds=540)
        purged_devices = await devices.purge_stale(session, now=now)
        purged_deliveries = await outbox.purge_finished(session, now=now)
    return {"devices": purged_devices, "deliveries": purged_deliveries}
