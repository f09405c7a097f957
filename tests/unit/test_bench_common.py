"""The benchmark helpers: payload sizes, the JSON last line, argument defaults."""

from __future__ import annotations

import json

from bench import relay as relay_bench
from bench import store as store_bench
from bench._common import children_cpu, emit, payloads


def test_payloads_are_distinct_json_of_the_requested_size():
    states = payloads(50, 200)
    assert len(set(states)) == 50
    for s in states:
        assert len(s) == 200
        assert json.loads(s)["class_version"] == 1


def test_emit_ends_with_one_json_line(capsys):
    emit("title", ["a", "b"], [["x", "1"]], ["a note"], {"bench": "t", "vs_raw": 1.0, "met": True})
    last = capsys.readouterr().out.rstrip("\n").splitlines()[-1]
    assert json.loads(last) == {"bench": "t", "vs_raw": 1.0, "met": True}


def test_cpu_of_unknown_server_is_unknown():
    assert children_cpu(None) is None


def test_defaults_match_the_brief():
    store_args = store_bench.parse([])
    assert store_args.writers == 8 and store_args.rounds >= 3
    relay_args = relay_bench.parse([])
    assert relay_args.events >= 50_000 and set(relay_args.batch_sizes) >= {500, 2000}
    assert relay_bench.default_batch_size() > 0
