"""Baseline: the platform's tables as the releases before versioned migrations created them
(event store, relay cursor, inbox and dead letters, failed jobs, checkpoints).

``IF NOT EXISTS`` throughout, so a schema such a release installed is adopted as it is;
what those releases changed in place later comes in the next revisions.
"""

from alembic import op

revision = "yishi_0001"
down_revision = None
branch_labels = ("yishi",)
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS events (
            position   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tx_id      xid8 NOT NULL DEFAULT pg_current_xact_id(),
            stream_id  text NOT NULL,
            version    integer NOT NULL CHECK (version > 0),
            event_id   uuid NOT NULL UNIQUE,
            district   text NOT NULL,
            topic      text NOT NULL,
            state      bytea NOT NULL,
            metadata   jsonb NOT NULL,
            hash       bytea NOT NULL,
            UNIQUE (stream_id, version)
        )
    """)
    op.execute("CREATE INDEX IF NOT EXISTS events_log_order ON events (tx_id, position)")
    op.execute("""
        CREATE TABLE IF NOT EXISTS snapshots (
            stream_id  text PRIMARY KEY,
            version    integer NOT NULL,
            topic      text NOT NULL,
            state      bytea NOT NULL
        )
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS log_chain (
            seq        bigint PRIMARY KEY,
            position   bigint NOT NULL UNIQUE,
            tx_id      xid8 NOT NULL,
            chain      bytea NOT NULL
        )
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS relay_position (
            name        text PRIMARY KEY,
            tx_id       xid8 NOT NULL,
            position    bigint NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS inbox (
            consumer      text NOT NULL,
            source        text NOT NULL,
            message_id    text NOT NULL,
            processed_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, source, message_id)
        )
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS dead_letters (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            consumer    text NOT NULL,
            topic       text NOT NULL,
            partition   integer NOT NULL,
            "offset"    bigint NOT NULL,
            reason      text NOT NULL,
            headers     jsonb NOT NULL,
            value       bytea,
            recorded_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS failed_jobs (
            job        text NOT NULL,
            item       text NOT NULL,
            attempts   integer NOT NULL,
            reason     text NOT NULL,
            failed_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (job, item)
        )
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS checkpoints (
            seq         bigint PRIMARY KEY,
            position    bigint NOT NULL,
            chain       bytea NOT NULL,
            signed_at   timestamptz NOT NULL,
            public_key  bytea NOT NULL,
            signature   bytea NOT NULL
        )
    """)
