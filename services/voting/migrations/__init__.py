"""The voting service's schema migrations (Alembic branch ``voting``), see :mod:`yishi.migrations`."""
