import datetime as dt
import os

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker
from sqlalchemy import func, select, text

from auth.models import AuthSession
from auth.roles import Role
from tests.support.factories import make_account, make_unit, sign_in
from workers.settings import WorkerSettings


async def test_purge_job_runs_in_a_real_arq_worker_and_removes_only_long_ended_sessions(client, owner_engine):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    await sign_in(client, editor)
    await sign_in(client, editor)
    async with owner_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE auth_sessions SET revoked_at = :old WHERE id = (SELECT id FROM auth_sessions LIMIT 1)"
            ),
            {"old": dt.datetime.now(dt.UTC) - dt.timedelta(days=31)},
        )
    settings = RedisSettings.from_dsn(os.environ["CHUONG_REDIS_URL"])
    pool = await create_pool(settings)
    try:
        job = await pool.enqueue_job("purge_ended_sessions", _job_id="purge-test")
        worker = Worker(
            functions=WorkerSettings.functions,
            redis_settings=settings,
            burst=True,
            poll_delay=0,
            on_startup=WorkerSettings.on_startup,
            handle_signals=False,
        )
        await worker.main()
        await worker.close()
        assert job is not None
        assert await job.result(timeout=5) == 1
    finally:
        await pool.aclose()
    async with owner_engine.connect() as conn:
        left = (await conn.execute(select(func.count()).select_from(AuthSession))).scalar_one()
        audited = (
            await conn.execute(text("SELECT details FROM audit_log WHERE action='session.purged'"))
        ).one()
    assert left == 1
    assert audited.details == {"count": 1}
