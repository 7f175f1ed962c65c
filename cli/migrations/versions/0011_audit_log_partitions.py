"""audit log partitioned by month, archive records, key ids (D-25)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 00:11:00

The audit log must last 5 years (D-25): one ever-growing table becomes a table partitioned by
month of ``chained_at`` (when a row joined the chain), so that old months can be archived to
signed files and detached (auth/audit/archive.py). Rows are copied in seq order with their hashes
untouched; ``chained_at`` of an existing row is the latest ``occurred_at`` up to it, which never
goes back along the chain, and ``key_id`` is "default" (CHUONG_AUDIT_HMAC_KEY, the only key there
was). The append-only triggers and the application role's SELECT/INSERT-only grants are set on the
new table, and on every partition as it is created: a partition can be named directly, and a
TRUNCATE of a partition does not fire the parent's statement trigger.

Partitions are created ahead by ``audit_log_ensure_partitions`` (the worker's daily job and
``chuong audit partitions ensure``): a SECURITY DEFINER function owned by the schema owner, the
only DDL the application role can cause, and only of this kind. Rows whose month has no partition
wait in a default partition; the next ensure gives their month a partition and moves them there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "chuong_app"
# The months created ahead of the current one by the migration (the daily job keeps them coming).
MONTHS_AHEAD = 3

INDEXES = {
    "ix_audit_log_action_seq": ["action", "seq"],
    "ix_audit_log_actor_seq": ["actor_id", "seq"],
    "ix_audit_log_object": ["object_type", "object_id"],
    "ix_audit_log_occurred_at": ["occurred_at"],
    "ix_audit_log_unit_seq": ["unit_id", "seq"],
}
COLUMNS = (
    "seq, occurred_at, actor_kind, actor_id, on_behalf_of_id, unit_id, action, object_type, object_id,"
    " outcome, request_id, ip, user_agent, details, prev_hash, hash"
)


def _if_app_role(*statements: str) -> None:
    """Run ``statements`` if the application role exists (as 0001 grants it)."""
    body = "\n".join(f"EXECUTE {_literal(statement)};" for statement in statements)
    op.execute(f"""
    DO $$
    BEGIN
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            {body}
        END IF;
    END $$;
    """)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _audit_log_table(name: str, *, partitioned: bool) -> None:
    chain_columns = (
        [
            sa.Column(
                "chained_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
            ),
            sa.Column("key_id", sa.String(length=32), server_default=sa.text("'default'"), nullable=False),
        ]
        if partitioned
        else []
    )
    op.create_table(
        name,
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("on_behalf_of_id", sa.Uuid(), nullable=True),
        sa.Column("unit_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=True),
        sa.Column("object_id", sa.String(length=128), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        *chain_columns,
        sa.PrimaryKeyConstraint(*(["seq", "chained_at"] if partitioned else ["seq"]), name="pk_audit_log"),
        **({"postgresql_partition_by": "RANGE (chained_at)"} if partitioned else {}),
    )
    for index, columns in INDEXES.items():
        op.create_index(index, name, columns, unique=False)
    # audit_log_append_only() is 0001's: it rejects whatever fires it.
    op.execute(f"""
    CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON {name}
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
    """)
    op.execute(f"""
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {name}
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
    """)


def _move_aside(old: str, new: str) -> None:
    """Rename a table with its primary key and indexes, freeing their names."""
    op.execute(f"ALTER TABLE {old} RENAME TO {new}")
    op.execute(f"ALTER INDEX pk_audit_log RENAME TO pk_{new}")
    for index in INDEXES:
        op.execute(f"ALTER INDEX {index} RENAME TO {index.replace('audit_log', new)}")


PARTITION_FUNCTIONS = (
    # One partition: its own TRUNCATE trigger (row triggers are cloned from the parent, statement
    # triggers are not) and grants (the default privileges would give the app role UPDATE and
    # DELETE on a new table, which it could use by naming the partition).
    """
    CREATE FUNCTION audit_log_protect_partition(partition_name text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
    BEGIN
        EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()', partition_name);
        EXECUTE format('REVOKE ALL ON %I FROM PUBLIC', partition_name);
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'chuong_app') THEN
            EXECUTE format('REVOKE ALL ON %I FROM chuong_app', partition_name);
            EXECUTE format('GRANT SELECT, INSERT ON %I TO chuong_app', partition_name);
        END IF;
    END $$
    """,
    # The partition of one month (UTC), named audit_log_pYYYY_MM; NULL if it exists already.
    """
    CREATE FUNCTION audit_log_create_partition(month date) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
    DECLARE
        first_day timestamp := date_trunc('month', month);
        partition_name text := 'audit_log_p' || to_char(month, 'YYYY_MM');
    BEGIN
        IF to_regclass(partition_name) IS NOT NULL THEN
            RETURN NULL;
        END IF;
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
                       partition_name, first_day AT TIME ZONE 'UTC',
                       (first_day + interval '1 month') AT TIME ZONE 'UTC');
        PERFORM audit_log_protect_partition(partition_name);
        RETURN partition_name;
    END $$
    """,
    """
    CREATE FUNCTION audit_log_create_default_partition() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
    BEGIN
        CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
        PERFORM audit_log_protect_partition('audit_log_default');
    END $$
    """,
    # Every month from first_month to last_month gets its partition (but months already archived:
    # their rows are in archive files). Rows that waited in the default partition first get the
    # partitions of their months and move there, in this transaction, with every writer waiting:
    # the rows (and so the chain) are unchanged, only where they are stored. Returns the names of
    # the partitions created.
    """
    CREATE FUNCTION audit_log_ensure_partitions(first_month date, last_month date) RETURNS text[]
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
    DECLARE
        created text[] := '{}';
        archived_until timestamptz;
        month date;
        partition_name text;
    BEGIN
        IF first_month IS NULL OR last_month IS NULL OR last_month < first_month
           OR last_month > first_month + interval '10 years' THEN
            RAISE EXCEPTION 'audit partitions: months % to % are not a range of at most 10 years',
                first_month, last_month USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF EXISTS (SELECT FROM audit_log_default) THEN
            LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE;
            ALTER TABLE audit_log DETACH PARTITION audit_log_default;
            ALTER TABLE audit_log_default RENAME TO audit_log_default_moving;
            FOR month IN SELECT DISTINCT date_trunc('month', chained_at)::date FROM audit_log_default_moving LOOP
                partition_name := audit_log_create_partition(month);
                IF partition_name IS NOT NULL THEN
                    created := created || partition_name;
                END IF;
            END LOOP;
            INSERT INTO audit_log SELECT * FROM audit_log_default_moving;
            DROP TABLE audit_log_default_moving;
            PERFORM audit_log_create_default_partition();
        END IF;
        SELECT max(period_end) INTO archived_until FROM audit_archives;
        FOR month IN SELECT generate_series(date_trunc('month', first_month), last_month, interval '1 month')::date LOOP
            CONTINUE WHEN archived_until IS NOT NULL AND month::timestamp AT TIME ZONE 'UTC' < archived_until;
            partition_name := audit_log_create_partition(month);
            IF partition_name IS NOT NULL THEN
                created := created || partition_name;
            END IF;
        END LOOP;
        RETURN created;
    END $$
    """,
)
FUNCTION_SIGNATURES = (
    "audit_log_protect_partition(text)",
    "audit_log_create_partition(date)",
    "audit_log_create_default_partition()",
    "audit_log_ensure_partitions(date, date)",
)


def upgrade() -> None:
    op.create_table(
        "audit_archives",
        sa.Column("first_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("manifest", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("first_seq", name=op.f("pk_audit_archives")),
    )
    op.execute("""
    CREATE TRIGGER audit_archives_no_update_delete BEFORE UPDATE OR DELETE ON audit_archives
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
    """)
    op.execute("""
    CREATE TRIGGER audit_archives_no_truncate BEFORE TRUNCATE ON audit_archives
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
    """)

    # Writers wait here until the new table is in place (and then append to it).
    op.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
    _move_aside("audit_log", "audit_log_unpartitioned")
    _audit_log_table("audit_log", partitioned=True)
    for statement in PARTITION_FUNCTIONS:
        op.execute(statement)
    for signature in FUNCTION_SIGNATURES:
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute("SELECT audit_log_create_default_partition()")
    op.execute(f"""
    SELECT audit_log_ensure_partitions(
        date_trunc('month', coalesce(min(occurred_at), now()) AT TIME ZONE 'UTC')::date,
        (date_trunc('month', greatest(max(occurred_at), now()) AT TIME ZONE 'UTC')
            + interval '{MONTHS_AHEAD} months')::date)
    FROM audit_log_unpartitioned
    """)
    op.execute(f"""
    INSERT INTO audit_log ({COLUMNS}, chained_at, key_id)
    SELECT {COLUMNS}, max(occurred_at) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING), 'default'
    FROM audit_log_unpartitioned ORDER BY seq
    """)
    op.execute("""
    DO $$
    BEGIN
        IF (SELECT count(*) FROM audit_log) <> (SELECT count(*) FROM audit_log_unpartitioned) THEN
            RAISE EXCEPTION 'audit_log: rows were lost while partitioning';
        END IF;
    END $$
    """)
    op.drop_table("audit_log_unpartitioned")

    _if_app_role(
        f"REVOKE ALL ON audit_log, audit_archives FROM {APP_ROLE}",
        f"GRANT SELECT, INSERT ON audit_log TO {APP_ROLE}",
        f"GRANT SELECT ON audit_archives TO {APP_ROLE}",
        f"GRANT EXECUTE ON FUNCTION audit_log_ensure_partitions(date, date) TO {APP_ROLE}",
    )


def downgrade() -> None:
    # The previous release verifies every row with CHUONG_AUDIT_HMAC_KEY from genesis: refuse to
    # hand it a chain it would report as broken.
    op.execute("""
    DO $$
    BEGIN
        IF EXISTS (SELECT FROM audit_archives) THEN
            RAISE EXCEPTION 'audit partitions were archived: the previous release cannot verify the chain';
        END IF;
        IF EXISTS (SELECT FROM audit_log WHERE key_id <> 'default') THEN
            RAISE EXCEPTION 'audit rows were chained with rotated keys: the previous release cannot verify them';
        END IF;
    END $$
    """)
    op.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
    _move_aside("audit_log", "audit_log_partitioned")
    _audit_log_table("audit_log", partitioned=False)
    op.execute(f"INSERT INTO audit_log ({COLUMNS}) SELECT {COLUMNS} FROM audit_log_partitioned ORDER BY seq")
    op.drop_table("audit_log_partitioned")  # with its partitions
    for signature in reversed(FUNCTION_SIGNATURES):
        op.execute(f"DROP FUNCTION {signature}")
    op.drop_table("audit_archives")
    _if_app_role(
        f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {APP_ROLE}",
        f"GRANT SELECT, INSERT ON audit_log TO {APP_ROLE}",
    )
