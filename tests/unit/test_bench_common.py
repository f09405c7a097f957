"""The benchmark helpers: payload sizes, the JSON last line, argument defaults."""

from __future__ import annotations

import json

import pytest

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


def test_a_table_before_the_last_prints_no_json(capsys):
    emit("first", ["a"], [["x"]], [], None)
    emit("last", ["a"], [["y"]], [], {"bench": "t"})
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("{")] == ['{"bench": "t"}']


def test_a_phases_cpu_budget_is_each_process_less_its_idle_summed_and_against_the_cores():
    from bench import ballots

    samples = [ballots.Sample(f"b{k}", due=k / 500, sent=k / 500, done=k / 500 + 0.01, status=200)
               for k in range(1000)]  # 1,000 ballots over 2 s
    phase = ballots.Phase("ballots", 500, samples, cpu_used={"voting": 1.7, "db": 0.9, "broker": 0.05}, wall=4.0)
    phase.less_idle({"voting": 0.05, "db": 0.0, "broker": 0.02})  # 0.2 s and 0.08 s of it idle
    row = phase.row()
    assert row["cpu_ms_per_request_by_process"] == {"voting": 1.5, "db": 0.9, "broker": 0.0}
    assert row["cpu_ms_per_request"] == 1.5 and row["db_cpu_ms_per_request"] == 0.9
    assert row["machine_cpu_ms_per_request"] == 2.4
    assert row["cpu_bound_rate"] == round(1000 * ballots.CORES / 2.4)
    # Measured again later (all warm): the figures follow the newer idle.
    phase.less_idle({"voting": 0.0, "db": 0.0, "broker": 0.0})
    assert phase.row()["cpu_ms_per_request_by_process"] == {"voting": 1.7, "db": 0.9, "broker": 0.05}


def test_cpu_of_unknown_server_is_unknown():
    assert children_cpu(None) is None


def test_defaults_match_the_brief():
    store_args = store_bench.parse([])
    assert store_args.writers == 8 and store_args.rounds >= 3
    relay_args = relay_bench.parse([])
    assert relay_args.events >= 50_000 and set(relay_args.batch_sizes) >= {500, 2000}
    assert relay_bench.default_batch_size() > 0


def test_the_relay_bench_runs_on_apache_kafka_unless_told_tansu():
    assert relay_bench.parse([]).broker == "apache"
    assert relay_bench.parse(["--broker", "tansu"]).broker == "tansu"
    assert relay_bench.TARGET_VS_RAW == 0.8


def test_the_steady_phase_appends_by_schedule_at_1000_events_per_second_by_default():
    args = relay_bench.parse([])
    assert args.steady_rate == 1000 and args.steady_seconds > 0
    due = relay_bench.schedule(rate=1000, seconds=2, per_append=1)
    assert len(due) == 2000
    assert due[0] == 0 and due[1] == 0.001 and due[-1] == 1.999
    # Several events per append: fewer appends, the same events per second.
    assert relay_bench.schedule(rate=1000, seconds=2, per_append=4) == pytest.approx([i * 0.004 for i in range(500)])


def test_latency_figures_are_percentiles_of_the_samples_in_ms():
    figures = relay_bench.latency_figures([i / 1000 for i in range(1, 1001)])  # 1 … 1000 ms
    assert figures == {"count": 1000, "p50_ms": 500.5, "p99_ms": 990.01, "p99_9_ms": 999.001, "max_ms": 1000.0}
    assert relay_bench.latency_figures([]) == {"count": 0, "p50_ms": None, "p99_ms": None, "p99_9_ms": None,
                                               "max_ms": None}


def test_the_rebalance_bench_measures_every_assignor_aiokafka_ships_on_apache_kafka():
    from bench import rebalance

    args = rebalance.parse([])
    assert args.broker == "apache" and args.districts >= 2 and args.rounds >= 1
    assert set(args.strategies) == {"range", "roundrobin", "sticky"}


def test_the_best_assignor_shares_evenly_then_moves_least_then_is_quickest():
    from bench import rebalance

    def figures(spread, moved, third, join, leave):
        return {"spread": spread, "moved_on_join": moved, "moved_on_third": third, "join_s": join, "leave_s": leave}

    assert rebalance.best({"range": figures(2, 2, 2, 1.0, 1.0), "roundrobin": figures(0, 3, 4, 2.0, 2.0),
                           "sticky": figures(0, 3, 2, 3.0, 3.0)}) == "sticky"
    tied = {"roundrobin": figures(0, 3, 2, 2.0, 2.0), "sticky": figures(0, 3, 2, 3.0, 3.0)}
    assert rebalance.best(tied) == "roundrobin"
    assert rebalance.moved({"p0": "a", "p1": "a"}, {"p0": "a", "p1": "b"}) == 1
