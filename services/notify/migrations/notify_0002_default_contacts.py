"""The district's directory of default contacts (who is reached without subscribing)."""

from alembic import op

revision = "notify_0002"
down_revision = "notify_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS default_contacts (
            district text NOT NULL, party_id text NOT NULL, channel text NOT NULL, address text NOT NULL,
            language text NOT NULL, PRIMARY KEY (district, party_id))
    """)
