"""Baseline: the oversight service's projection tables, as created before versioned migrations."""

from alembic import op

revision = "oversight_0001"
down_revision = None
branch_labels = ("oversight",)
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS ov_councils (
            district text NOT NULL, council_id text NOT NULL, level text NOT NULL, area_id text NOT NULL,
            parent_council_id text, PRIMARY KEY (district, council_id))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS ov_resolutions (
            district text NOT NULL, resolution_id text NOT NULL, proposal_id text NOT NULL, council_id text NOT NULL,
            community_id text, vote_id text, title text NOT NULL, budget_fen bigint,
            status text NOT NULL DEFAULT 'open', closed_reason text,
            registered_at timestamptz NOT NULL, closed_at timestamptz,
            PRIMARY KEY (district, resolution_id))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS ov_tasks (
            district text NOT NULL, task_id text NOT NULL, resolution_id text NOT NULL,
            implementer_kind text NOT NULL, implementer_id text NOT NULL, implementer_name text NOT NULL,
            status text NOT NULL, percent integer NOT NULL DEFAULT 0, due_at timestamptz NOT NULL,
            budget_fen bigint, completed_at timestamptz, passed_at timestamptz, last_reminder_at timestamptz,
            PRIMARY KEY (district, task_id))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS ov_funds (
            district text NOT NULL, fund_id text NOT NULL, community_id text NOT NULL, year integer NOT NULL,
            amount_fen bigint NOT NULL, allocated_fen bigint NOT NULL DEFAULT 0, spent_fen bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (district, fund_id), UNIQUE (district, community_id, year))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS ov_allocations (
            district text NOT NULL, allocation_id text NOT NULL, fund_id text NOT NULL, resolution_id text NOT NULL,
            task_id text, amount_fen bigint NOT NULL, spent_fen bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (district, allocation_id))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS ov_ratings (
            district text NOT NULL, rating_id text NOT NULL, resolution_id text NOT NULL, year integer NOT NULL,
            satisfied integer NOT NULL, basically_satisfied integer NOT NULL, dissatisfied integer NOT NULL,
            PRIMARY KEY (district, rating_id))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS ov_policies (
            district text NOT NULL, scope text NOT NULL, scope_id text NOT NULL, settings jsonb NOT NULL,
            PRIMARY KEY (district, scope, scope_id))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS ov_audit (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            district text NOT NULL, source text NOT NULL, message_id text NOT NULL, type text NOT NULL,
            occurred_at timestamptz NOT NULL, actor_id text NOT NULL, actor_role text NOT NULL, seat_id text,
            proposal_id text, vote_id text, resolution_id text, task_id text, body jsonb NOT NULL,
            UNIQUE (district, source, message_id))
    """)
    op.execute("CREATE INDEX IF NOT EXISTS ov_audit_proposal ON ov_audit (district, proposal_id)")
    op.execute("CREATE INDEX IF NOT EXISTS ov_audit_vote ON ov_audit (district, vote_id)")
    op.execute("CREATE INDEX IF NOT EXISTS ov_audit_resolution ON ov_audit (district, resolution_id)")
