"""Baseline: the proposals service's projection tables, as created before versioned migrations."""

from alembic import op

revision = "proposals_0001"
down_revision = None
branch_labels = ("proposals",)
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS read_models (
            kind        text NOT NULL,
            district    text NOT NULL,
            id          text NOT NULL,
            council_id  text,
            status      text,
            doc         jsonb NOT NULL,
            PRIMARY KEY (kind, district, id)
        )
    """)
    op.execute("CREATE INDEX IF NOT EXISTS read_models_by_council ON read_models (kind, district, council_id, status)")
