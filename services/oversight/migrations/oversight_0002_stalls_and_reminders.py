"""A task's stall and escalation, and each reminder with whether it reached anyone."""

from alembic import op

revision = "oversight_0002"
down_revision = "oversight_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE ov_tasks ADD COLUMN IF NOT EXISTS stalled_at timestamptz,"
               " ADD COLUMN IF NOT EXISTS escalation_level text, ADD COLUMN IF NOT EXISTS escalated_to text")
    op.execute("""
        CREATE TABLE IF NOT EXISTS ov_reminders (
            district text NOT NULL, reminder_id text NOT NULL, task_id text NOT NULL, resolution_id text NOT NULL,
            kind text NOT NULL, step integer NOT NULL, recipient_id text NOT NULL, due_at timestamptz NOT NULL,
            fired_at timestamptz NOT NULL, notification_id text, delivery text NOT NULL DEFAULT 'pending',
            channel text, failure_reason text, PRIMARY KEY (district, reminder_id))
    """)
    op.execute("CREATE INDEX IF NOT EXISTS ov_reminders_task ON ov_reminders (district, task_id)")
    op.execute("CREATE INDEX IF NOT EXISTS ov_reminders_notification ON ov_reminders (district, notification_id)")
