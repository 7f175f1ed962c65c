"""The audit log is partitioned by month (D-25): rows land in their month's partition, the chain
verifies across partitions, next months' partitions are created ahead (by the application's role,
through the owner's function), rows that find no partition wait in the default one until ensure
moves them, and every partition keeps the append-only rules."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from auth import audit
from auth.audit.partitions import DEFAULT_PARTITION, add_months, ensure_partitions, list_partitions, month_of
from auth.audit.verify import verify_chain
from core.clock import utcnow
from core.db import transaction
from tests.audit.helpers import months_ago, partition_name, rows_by_partition, set_clock, tamper, write_rows


async def verify():
    async with transaction() as session:
        return await verify_chain(session, batch=4)


async def ensure(**options):
    async with transaction() as session:  # the application's role, as the worker runs it
        return await ensure_partitions(session, now=utcnow(), **options)


async def test_rows_land_in_their_months_partition_and_the_chain_spans_them(database_url, owner_engine):
    created = await ensure(since=months_ago(4).date())
    assert created == [partition_name(months_ago(n)) for n in (4, 3, 2, 1)]  # later ones exist already
    for count, n in ((3, 4), (2, 3), (4, 1)):
        set_clock(months_ago(n))
        await write_rows(count)
    set_clock(dt.datetime.now(dt.UTC))
    await write_rows(1)

    stored = await rows_by_partition(owner_engine)
    assert stored == {
        partition_name(months_ago(4)): [1, 2, 3],
        partition_name(months_ago(3)): [4, 5],
        partition_name(months_ago(1)): [6, 7, 8, 9],
        partition_name(dt.datetime.now(dt.UTC)): [10],
    }
    result = await verify()
    assert result.ok and result.rows_checked == 10, result.message


async def test_ensure_creates_the_coming_months_ahead_and_is_idempotent(database_url):
    this_month = month_of(utcnow())
    async with transaction() as session:
        present = [p.month for p in await list_partitions(session)]
    assert present == [add_months(this_month, n) for n in range(4)]  # the migration's: this month and 3 ahead

    set_clock(dt.datetime.combine(add_months(this_month, 2), dt.time(12), tzinfo=dt.UTC))
    assert await ensure() == [f"audit_log_p{add_months(this_month, n):%Y_%m}" for n in (4, 5)]
    assert await ensure() == []
    assert await ensure(months_ahead=6) == [
        f"audit_log_p{add_months(this_month, n):%Y_%m}" for n in (6, 7, 8)
    ]


async def test_rows_without_a_partition_wait_in_the_default_one_until_ensure_moves_them(
    database_url, owner_engine
):
    await write_rows(2)
    far = dt.datetime.combine(add_months(month_of(utcnow()), 7), dt.time(9), tzinfo=dt.UTC)
    set_clock(far)
    await write_rows(3)  # the worker was down for months: no partition of this month yet
    assert (await rows_by_partition(owner_engine))[DEFAULT_PARTITION] == [3, 4, 5]
    assert (await verify()).ok

    created = await ensure()
    assert created[0] == partition_name(far)
    stored = await rows_by_partition(owner_engine)
    assert DEFAULT_PARTITION not in stored
    assert stored[partition_name(far)] == [3, 4, 5]
    await write_rows(1)
    result = await verify()
    assert result.ok and result.rows_checked == 6, result.message
    async with owner_engine.connect() as conn:
        triggers = (
            await conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(:name) AND NOT tgisinternal"
                    " ORDER BY 1"
                ),
                {"name": DEFAULT_PARTITION},
            )
        ).scalars()
        assert list(triggers) == ["audit_log_no_truncate", "audit_log_no_update_delete"]


async def test_chained_at_never_goes_back_along_the_chain(database_url, owner_engine):
    set_clock(months_ago(0, day=2))
    await write_rows(2)
    set_clock(months_ago(0, day=1))  # a host whose clock is a day behind
    await write_rows(2)
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT occurred_at, chained_at FROM audit_log ORDER BY seq"))).all()
    chained = [row.chained_at for row in rows]
    assert chained == sorted(chained)
    assert rows[3].chained_at == rows[1].chained_at > rows[3].occurred_at  # when it happened stays true


def partition_statements() -> list[str]:
    name = partition_name(dt.datetime.now(dt.UTC))
    return [
        f"UPDATE {name} SET outcome = 'failure'",
        f"DELETE FROM {name}",
        f"TRUNCATE {name}",
        f"TRUNCATE {DEFAULT_PARTITION}",
    ]


@pytest.mark.parametrize("statement", partition_statements())
async def test_partitions_are_append_only_for_the_owner_and_closed_to_the_app_role(
    database_url, owner_engine, statement
):
    await write_rows(2)
    with pytest.raises(DBAPIError, match="append-only"):
        async with owner_engine.begin() as conn:
            await conn.execute(text(statement))
    engine = create_async_engine(database_url)
    try:
        with pytest.raises(DBAPIError, match="permission denied"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()
    assert (await verify()).ok


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE audit_log DETACH PARTITION {partition}",
        "DROP TABLE {partition}",
        "SELECT audit_log_create_partition('2001-01-01')",
        "INSERT INTO audit_archives (first_seq, last_seq, last_hash, period_end, manifest, archived_at)"
        " VALUES (1, 2, 'x', now(), '{{}}', now())",
    ],
)
async def test_the_app_role_can_neither_drop_partitions_nor_record_archives(database_url, statement):
    engine = create_async_engine(database_url)
    try:
        with pytest.raises(DBAPIError, match=r"must be owner|permission denied"):
            async with engine.begin() as conn:
                await conn.execute(text(statement.format(partition=partition_name(dt.datetime.now(dt.UTC)))))
    finally:
        await engine.dispose()


async def test_ensure_refuses_a_range_that_is_not_one(database_url):
    with pytest.raises(DBAPIError, match="not a range"):
        await ensure(since=add_months(month_of(utcnow()), 5))


async def test_the_writer_refuses_a_repeatable_read_transaction(database_url):
    # Its snapshot could miss the newest row, and a repeated seq would fork the chain.
    async def write_in_repeatable_read() -> None:
        async with transaction() as session:
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            audit.record(session, action="test.event")

    with pytest.raises(RuntimeError, match="READ COMMITTED"):
        await write_in_repeatable_read()
    assert (await verify()).rows_checked == 0


async def test_a_repeated_seq_is_named_as_a_break(database_url, owner_engine):
    await write_rows(3)
    # Same seq, another partition key: the primary key (seq, chained_at) lets it in.
    await tamper(
        owner_engine,
        "INSERT INTO audit_log SELECT seq, occurred_at, actor_kind, actor_id, on_behalf_of_id, unit_id,"
        " action, object_type, object_id, outcome, request_id, ip, user_agent, details, prev_hash, hash,"
        " chained_at + interval '1 second', key_id FROM audit_log WHERE seq = 2",
    )
    for batch in (1, 2, 3, 5):  # wherever a page of the verification ends
        async with transaction() as session:
            result = await verify_chain(session, batch=batch)
        assert (result.ok, result.first_broken_seq, result.reason) == (False, 2, "seq_repeated")
