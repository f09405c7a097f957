"""Alembic's environment: run by :func:`yishi.migrations.upgrade` on the connection it
opened (``config.attributes``), inside its transaction; no other way in."""

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `yishi migrate SERVICE` (yishi.migrations.upgrade)")


def _applied(ctx, step, heads, run_args) -> None:
    if step.is_upgrade:
        config.attributes["applied"].append(step.up_revision_id)


context.configure(connection=connection, version_table_schema=config.attributes["schema"],
                  transactional_ddl=True, on_version_apply=_applied)
with context.begin_transaction():
    context.run_migrations()
