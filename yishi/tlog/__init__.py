"""Transparency log: each service's Merkle log (RFC 9162), its checkpoints and proofs."""
