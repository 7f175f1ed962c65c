"""`chuong audit verify` records its outcome for the alerts (core/maintenance.py): a pass sets the
last success, a broken chain the last failure; a database it cannot write to changes neither its
exit code nor its report."""

from __future__ import annotations

from core import maintenance
from core.db import transaction
from tests.audit.helpers import tamper, write_rows
from tests.audit.test_cli import chuong_audit


async def _runs() -> dict[str, maintenance.RunTimes]:
    async with transaction() as session:
        return {run.task: run for run in await maintenance.all_runs(session)}


async def test_verify_records_its_success_and_its_failure(database_url, owner_engine):
    await write_rows(4)
    code, _, err = await chuong_audit(database_url, "verify")
    assert code == 0 and "not recorded" not in err
    passed = (await _runs())["audit_verify"]
    assert passed.last_success_at is not None and passed.last_failure_at is None

    await tamper(owner_engine, "UPDATE audit_log SET outcome = 'failure' WHERE seq = 2")
    code, _, _ = await chuong_audit(database_url, "verify")
    assert code == 1
    failed = (await _runs())["audit_verify"]
    assert failed.last_success_at == passed.last_success_at
    assert failed.last_failure_at is not None and failed.last_failure_at > passed.last_success_at


def test_an_outcome_that_cannot_be_recorded_only_warns(capsys):
    unreachable = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    assert (
        maintenance.record_outcome(
            maintenance.MaintenanceTask.AUDIT_VERIFY, ok=True, database_url=unreachable
        )
        is False
    )
    assert "the outcome of audit_verify was not recorded" in capsys.readouterr().err
