"""A vote's public id, the one its district chose (was an ad hoc ``ALTER TABLE`` at start).

Votes opened before ids were scoped by district have none: their stream id was their
public id, so it is copied, and the column becomes required.
"""

from alembic import op

revision = "voting_0002"
down_revision = "voting_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE votes ADD COLUMN IF NOT EXISTS public_id text")
    op.execute("UPDATE votes SET public_id = vote_id WHERE public_id IS NULL")
    op.execute("ALTER TABLE votes ALTER COLUMN public_id SET NOT NULL")
