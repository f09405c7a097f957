"""The echo test service's table."""

from alembic import op

revision = "echo_0001"
down_revision = None
branch_labels = ("echo",)
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE IF NOT EXISTS effects (message_id text NOT NULL, body bytea NOT NULL)")
