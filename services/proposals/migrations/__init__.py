"""The proposals service's schema migrations (Alembic branch ``proposals``), see :mod:`yishi.migrations`."""
