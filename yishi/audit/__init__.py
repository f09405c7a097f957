"""The auditor toolkit: replay history to any moment, reports, tamper verification, export.

Auditors must not have to trust the running services, so everything here works from
the record alone: the services' PostgreSQL event stores, the Kafka topics from offset
zero, or an exported bundle.

* :mod:`yishi.audit.sources` reads public events (and stored rows) from each source;
* :mod:`yishi.audit.views` is the cross-service audit view those events build;
* :mod:`yishi.audit.replay` drives a replay (as of a time or a position) with progress,
  and rebuilds one service's own state;
* :mod:`yishi.audit.reports` answers "who raised, seconded, decided, delivered…";
* :mod:`yishi.audit.checkpoints` signs the log chain head (Ed25519);
* :mod:`yishi.audit.verify` checks chains, checkpoints and Kafka against the stores;
* :mod:`yishi.audit.export` writes and checks self-contained bundles;
* :mod:`yishi.audit.proofs` checks a service's Merkle log from outside: signed
  checkpoints, inclusion and consistency proofs, a bundle against a checkpoint;
* :mod:`yishi.audit.recount` recounts verifiable secret votes from their published boards;
* :mod:`yishi.audit.cli` is ``yishi audit …``.
"""
