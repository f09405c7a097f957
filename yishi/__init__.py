"""Yishi platform package: the shared infrastructure every service imports.

One module per role: ``settings`` (configuration), ``embedded`` (local PostgreSQL and
broker), ``db`` (pools and schema), ``store`` (event store), ``relay`` (outbox to Kafka),
``inbox`` (idempotent consumers), ``runtime`` (service process), ``clock``, ``cli``.
"""
