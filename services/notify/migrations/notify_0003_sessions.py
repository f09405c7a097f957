"""Consultation sessions: when each starts (for the reminder the day before), whether it was
reminded, and who was invited to speak at it (the reminder reaches them too)."""

from alembic import op

revision = "notify_0003"
down_revision = "notify_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS sessions (
            district text NOT NULL, session_id text NOT NULL, council_id text NOT NULL, form text NOT NULL,
            starts_at timestamptz NOT NULL, place text, online_link text, chair text NOT NULL,
            closed boolean NOT NULL DEFAULT false, reminded boolean NOT NULL DEFAULT false,
            PRIMARY KEY (district, session_id))
    """)
    op.execute("CREATE INDEX IF NOT EXISTS sessions_to_remind ON sessions (starts_at) WHERE NOT reminded AND NOT closed")
    op.execute("""
        CREATE TABLE IF NOT EXISTS session_invitees (
            district text NOT NULL, session_id text NOT NULL, person_id text NOT NULL,
            PRIMARY KEY (district, session_id, person_id))
    """)
