"""The oversight service's schema migrations (Alembic branch ``oversight``), see :mod:`yishi.migrations`."""
