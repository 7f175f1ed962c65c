"""Audit rows follow the transaction they were recorded in, savepoints included."""

from __future__ import annotations

from sqlalchemy import select

from auth import audit
from auth.audit.models import AuditLog
from core.db import transaction


async def _actions() -> list[str]:
    async with transaction() as session:
        return list((await session.execute(select(AuditLog.action).order_by(AuditLog.seq))).scalars())


async def test_a_rolled_back_savepoint_drops_only_its_own_rows(database_url):
    async with transaction() as session:
        audit.record(session, action="test.before")
        savepoint = await session.begin_nested()
        audit.record(session, action="test.inside")
        await savepoint.rollback()
        audit.record(session, action="test.after")

    actions = await _actions()
    assert "test.before" in actions and "test.after" in actions
    assert "test.inside" not in actions


async def test_a_released_savepoint_keeps_its_rows(database_url):
    async with transaction() as session:
        async with session.begin_nested():
            audit.record(session, action="test.inside")
        audit.record(session, action="test.after")

    actions = await _actions()
    assert actions[-2:] == ["test.inside", "test.after"]


async def test_a_rollback_of_the_whole_transaction_drops_everything(database_url):
    session_actions_before = await _actions()
    async with transaction() as session:
        audit.record(session, action="test.never")
        await session.rollback()
    assert await _actions() == session_actions_before
