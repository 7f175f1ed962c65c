"""Quiet hours: the sweep's SQL and the digest sender's query are one rule (tracking/quiet.py) and
agree at its edges: the start is quiet, the end is not, and hours that wrap midnight hold on both
sides of it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from auth.roles import Role
from core.db import transaction
from tests.support.factories import make_account, make_unit
from tracking import sender, sweep
from tracking.models import Preference

T = dt.time.fromisoformat
DAY = (T("07:30"), T("09:30"))
NIGHT = (T("22:00"), T("06:30"))  # across midnight
# (quiet hours, local time, quiet?)
EDGES = [
    (DAY, T("07:29:59"), False),
    (DAY, T("07:30"), True),
    (DAY, T("08:00"), True),
    (DAY, T("09:29:59.999999"), True),
    (DAY, T("09:30"), False),
    (DAY, T("23:00"), False),
    (NIGHT, T("21:59:59"), False),
    (NIGHT, T("22:00"), True),
    (NIGHT, T("23:59:59.999999"), True),
    (NIGHT, T("00:00"), True),
    (NIGHT, T("06:29:59"), True),
    (NIGHT, T("06:30"), False),
    (NIGHT, T("12:00"), False),
    ((None, None), T("08:00"), False),
    ((None, None), T("00:00"), False),
]

# The sweep's statement reads the preferences as ``p`` and binds the local time as ``:local_time``.
SWEEP_RULE = text(
    f"SELECT coalesce(({sweep._QUIET}), false) FROM tracking_preferences p WHERE p.user_id = :user_id"
)


async def test_the_sweep_and_the_digest_sender_agree_at_the_edges(database_url):
    user = await make_account(role=Role.TASK_OFFICER, unit=await make_unit())
    seen = []
    for (start, end), local_time, _ in EDGES:
        async with transaction() as session:
            await session.execute(
                insert(Preference)
                .values(user_id=user.id, quiet_start=start, quiet_end=end)
                .on_conflict_do_update(
                    index_elements=[Preference.user_id], set_={"quiet_start": start, "quiet_end": end}
                )
            )
        async with transaction() as session:
            by_sweep = (
                await session.execute(SWEEP_RULE, {"user_id": user.id, "local_time": local_time})
            ).scalar_one()
            by_sender = user.id in await sender.quiet_users(
                session, user_ids=[user.id], local_time=local_time
            )
        seen.append((by_sweep, by_sender))
    assert seen == [(quiet, quiet) for _, _, quiet in EDGES]


@pytest.mark.parametrize("local_time", [T("00:00"), T("12:00")])
async def test_a_user_without_preferences_is_never_quiet(database_url, local_time):
    user = await make_account(role=Role.TASK_OFFICER, unit=await make_unit())
    async with transaction() as session:
        assert await sender.quiet_users(session, user_ids=[user.id], local_time=local_time) == set()
