"""Aggregates that moved module keep loading what was stored under their old name.

The ``eventsourcing`` library names a class by its module and qualified name, and stored
events keep the names they were written under: in their topic
(``services.oversight.domain:Task.Accepted``), in a creation event's ``originator_topic``
and in a snapshot's ``topic``. A service that moves an aggregate registers its old home
here once; the library resolves the aggregate's old topic and, through it, each of its
event classes' (``…:Task.Accepted`` is the registered ``…:Task`` and its ``Accepted``).
No I/O dependency: a domain imports it.
"""

from __future__ import annotations

from eventsourcing.utils import register_topic


def register_moved(old_module: str, *aggregates: type) -> None:
    """Resolve ``old_module:Aggregate`` (and ``old_module:Aggregate.Event``) to each of
    ``aggregates`` wherever it now lives; new events get the new names."""
    for aggregate in aggregates:
        register_topic(f"{old_module}:{aggregate.__qualname__}", aggregate)
