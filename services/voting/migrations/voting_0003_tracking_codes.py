"""Verifiable secret ballots: each secret choice's tracking code, and each vote's
published board (``published_boards``) and participants (``published_participants``),
read models of its events, each in a table of its own: no row holds voter ids (a vote's
roll, who took part) beside choices.

Choices of secret votes still open get a random code now, so that those votes, verifiable
by default, publish a complete board at their close (their voters read the code with
their receipt, as any other voter).
"""

from alembic import op

revision = "voting_0003"
down_revision = "voting_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("pending_choices", "secret_choices"):
        op.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS tracking_code text")
        # 80 bits of gen_random_uuid()'s strong randomness, in the format the service draws.
        op.execute(f"UPDATE {table} SET tracking_code = "
                   "substr(encode(sha256(uuid_send(gen_random_uuid())), 'hex'), 1, 20) "
                   "WHERE tracking_code IS NULL AND vote_id IN (SELECT vote_id FROM votes WHERE closed_at IS NULL)")
    op.execute("""
        CREATE TABLE IF NOT EXISTS published_boards (
            vote_id    text PRIMARY KEY,
            entries    jsonb NOT NULL
        )
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS published_participants (
            vote_id    text PRIMARY KEY,
            voter_ids  jsonb NOT NULL
        )
    """)
