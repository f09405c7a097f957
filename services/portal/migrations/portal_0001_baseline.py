"""The portal's read model: the public facts its pages are drawn from."""

from alembic import op

revision = "portal_0001"
down_revision = None
branch_labels = ("portal",)
depends_on = None


def upgrade() -> None:
    # One row per public event the pages need, keyed by the event's id (a redelivery or a
    # replay writes the same row), with the ids pages select by; the pages fold the rows
    # (services/portal/views.py), so the order the three topics arrive in does not matter.
    op.execute("""
        CREATE TABLE IF NOT EXISTS facts (
            district text NOT NULL, event_id text NOT NULL, type text NOT NULL,
            occurred_at timestamptz NOT NULL, actor_id text NOT NULL, actor_role text NOT NULL,
            council_id text, community_id text, proposal_id text, vote_id text, resolution_id text,
            task_id text, body jsonb NOT NULL,
            PRIMARY KEY (district, event_id))
    """)
    for column in ("council_id", "community_id", "proposal_id", "vote_id", "resolution_id"):
        op.execute(f"CREATE INDEX IF NOT EXISTS facts_by_{column} ON facts (district, {column}) "
                   f"WHERE {column} IS NOT NULL")
    op.execute("CREATE INDEX IF NOT EXISTS facts_by_type ON facts (district, type)")
