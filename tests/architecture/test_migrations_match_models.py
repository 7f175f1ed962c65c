"""The migrations and the models describe the same schema: alembic's own comparison of the
migrated database with every model finds no difference. Several branches each adding a migration
(and a column or index to a model) meet at merge time; a migration that forgot what its model
says, or the reverse, fails here instead of in production."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import cli.models  # noqa: F401  (registers every table, as the migrations' env.py does)
from core.db import Base
from tests.support.databases import TestDatabases


def _not_a_partition(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
    # The audit log's monthly partitions are made at run time (``chuong audit partitions``) and
    # belong to the partitioned table the model describes; they are not tables of their own.
    table = obj.table.name if kind in {"index", "column"} and hasattr(obj, "table") else name
    return not (table or "").startswith(("audit_log_p", "audit_log_default"))


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": _not_a_partition}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_the_migrated_schema_is_what_the_models_say(databases: TestDatabases):
    engine = create_async_engine(databases.owner_url(databases.template))
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == [], "\n".join(map(repr, differences))
