"""The relay's fencing epoch (was an ad hoc ``ALTER TABLE`` at every start)."""

from alembic import op

revision = "yishi_0002"
down_revision = "yishi_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE relay_position ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0")
