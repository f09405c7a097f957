"""The Merkle log (RFC 9162, :mod:`yishi.tlog`): the hash of every complete subtree of the
tree over the sealed events, and each checkpoint's tree head as a signed note.

``merkle_nodes`` holds node ``(level, idx)``, the subtree of leaves
``[idx * 2**level, (idx + 1) * 2**level)``; level 0 are the leaf hashes. Leaf ``i`` is
the event sealed at ``log_chain.seq = i + 1``, so the tree at a checkpoint has ``seq``
leaves. A log sealed before this revision is caught up by the sealer.
"""

from alembic import op

revision = "yishi_0003"
down_revision = "yishi_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE IF NOT EXISTS merkle_nodes (
            level  smallint NOT NULL,
            idx    bigint NOT NULL,
            hash   bytea NOT NULL,
            PRIMARY KEY (level, idx)
        )
    """)
    op.execute("ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS root bytea")
    op.execute("ALTER TABLE checkpoints ADD COLUMN IF NOT EXISTS note text")
