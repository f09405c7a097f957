"""The notify service's schema migrations (Alembic branch ``notify``), see :mod:`yishi.migrations`."""
