"""Baseline: the voting service's projection tables, as created before versioned migrations."""

from alembic import op

revision = "voting_0001"
down_revision = None
branch_labels = ("voting",)
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS votes (
            vote_id         text PRIMARY KEY,
            district        text NOT NULL,
            council_id      text NOT NULL,
            matter          jsonb NOT NULL,
            terms           jsonb NOT NULL,
            secret          boolean NOT NULL,
            electorate_size integer NOT NULL,
            opened_at       timestamptz NOT NULL,
            closes_at       timestamptz NOT NULL,
            closed_at       timestamptz,
            result          jsonb
        )
    """)
    op.execute("CREATE INDEX IF NOT EXISTS votes_open ON votes (closes_at) WHERE closed_at IS NULL")
    op.execute("""
        CREATE TABLE IF NOT EXISTS participants (
            vote_id   text NOT NULL,
            voter_id  text NOT NULL,
            PRIMARY KEY (vote_id, voter_id)
        )
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS open_ballots (
            vote_id    text NOT NULL,
            voter_id   text NOT NULL,
            ballot_id  text NOT NULL,
            choice     text NOT NULL,
            approvals  text[],
            PRIMARY KEY (vote_id, voter_id)
        )
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS pending_choices (
            receipt    bytea PRIMARY KEY,
            vote_id    text NOT NULL,
            choice     text NOT NULL,
            approvals  text[]
        )
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS secret_choices (
            receipt    bytea PRIMARY KEY,
            vote_id    text NOT NULL,
            choice     text NOT NULL,
            approvals  text[]
        )
    """)
    op.execute("CREATE INDEX IF NOT EXISTS secret_choices_vote ON secret_choices (vote_id)")
    op.execute("CREATE INDEX IF NOT EXISTS pending_choices_vote ON pending_choices (vote_id)")
