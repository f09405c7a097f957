"""Consultation sessions held (from their published minutes) and their attendance, the
records the district statistics and the yearly review count."""

from alembic import op

revision = "oversight_0003"
down_revision = "oversight_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS ov_sessions (
            district text NOT NULL, session_id text NOT NULL, council_id text NOT NULL, form text NOT NULL,
            held_at timestamptz NOT NULL, chair text NOT NULL, attendance integer NOT NULL,
            proxies integer NOT NULL, PRIMARY KEY (district, session_id))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS ov_attendance (
            district text NOT NULL, session_id text NOT NULL, council_id text NOT NULL, person_id text NOT NULL,
            proxy_for text, recorded_at timestamptz NOT NULL, PRIMARY KEY (district, session_id, person_id))
    """)
