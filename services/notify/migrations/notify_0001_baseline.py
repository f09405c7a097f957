"""Baseline: the notify service's projection tables, as created before versioned migrations."""

from alembic import op

revision = "notify_0001"
down_revision = None
branch_labels = ("notify",)
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS subscriptions (
            district text NOT NULL, subscription_id text NOT NULL,
            subscriber_kind text NOT NULL, subscriber_id text NOT NULL,
            channel text NOT NULL, address text NOT NULL, language text NOT NULL,
            event_types text[] NOT NULL, council_ids text[] NOT NULL, proposal_ids text[] NOT NULL,
            quiet_hours jsonb, active boolean NOT NULL,
            PRIMARY KEY (district, subscription_id)
        )
    """)
    op.execute("CREATE INDEX IF NOT EXISTS subscriptions_by_subscriber ON subscriptions (district, subscriber_id)")
    op.execute("""
        CREATE TABLE IF NOT EXISTS deliveries (
            delivery_id uuid PRIMARY KEY, district text NOT NULL, notification_id text NOT NULL,
            recipient_kind text NOT NULL, recipient_id text NOT NULL, channel text NOT NULL,
            address text NOT NULL, language text NOT NULL, template text NOT NULL,
            regarding_type text, regarding_subject text,
            status text NOT NULL, attempts integer NOT NULL, requested_at timestamptz NOT NULL,
            next_attempt_at timestamptz, claimed_until timestamptz, expires_at timestamptz,
            history jsonb NOT NULL
        )
    """)
    op.execute("CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at)")
    op.execute("CREATE INDEX IF NOT EXISTS deliveries_by_recipient ON deliveries (district, recipient_id)")
    op.execute("""
        CREATE TABLE IF NOT EXISTS council_members (
                district text NOT NULL, council_id text NOT NULL, member_id text NOT NULL,
                PRIMARY KEY (district, council_id, member_id))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS proposals (
                district text NOT NULL, proposal_id text NOT NULL, council_id text NOT NULL, title text NOT NULL,
                PRIMARY KEY (district, proposal_id))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS votes (
                district text NOT NULL, vote_id text NOT NULL, council_id text NOT NULL, question text NOT NULL,
                closes_at timestamptz NOT NULL, roll text[], closed boolean NOT NULL DEFAULT false,
                reminded boolean NOT NULL DEFAULT false, PRIMARY KEY (district, vote_id))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS ballots (
                district text NOT NULL, vote_id text NOT NULL, voter_id text NOT NULL,
                PRIMARY KEY (district, vote_id, voter_id))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS task_people (
                district text NOT NULL, task_id text NOT NULL, resolution_id text NOT NULL, person_id text NOT NULL,
                role text NOT NULL, PRIMARY KEY (district, task_id, person_id, role))
    """)
    op.execute("""
        CREATE TABLE IF NOT EXISTS supervisors (
                district text NOT NULL, resolution_id text NOT NULL, person_id text NOT NULL,
                PRIMARY KEY (district, resolution_id, person_id))
    """)
