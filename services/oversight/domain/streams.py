"""Stream ids of oversight's aggregates: derived from (district, kind, public id)."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1d2c1e-6b0a-4d8e-9a52-0b7c3f1e0a17")


def stream_id(district: str, kind: str, public_id: str) -> uuid.UUID:
    """The aggregate id of ``kind`` ``public_id`` in ``district`` (deterministic)."""
    return uuid.uuid5(_NAMESPACE, f"{district}/{kind}/{public_id}")
