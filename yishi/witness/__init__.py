"""The witness (C2SP tlog-witness): cosigns a log's checkpoints only while each extends the
last one it cosigned; and what verifiers make of cosignatures (k of n, split views).

* :mod:`yishi.witness.core`: the rules, pure; :mod:`yishi.witness.store`: its state (SQLite);
* :mod:`yishi.witness.server`: ``yishi witness serve``; :mod:`yishi.witness.cli`: the commands.
"""
