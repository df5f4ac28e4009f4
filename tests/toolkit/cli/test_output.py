"""The stats table: request counts as columns, a dash for peers that do not report them, and
every further field a server returns as a column of its own, unless it is 0 on every node:
then a line under the table names it."""

from __future__ import annotations

import io

from rich.console import Console

from micro.toolkit.cli.output import stats_table


def test_stats_table_shows_counts_and_a_dash_where_a_peer_has_none() -> None:
    v1 = {"started": 0, "uptime": 5, "memory": 2048, "threads": 7, "gc": 1}  # go-micro v1
    ours = {**v1, "requests": 12, "errors": 3, "in_flight": 1, "latency_p50_us": 250}
    rows = [
        {"node": "a", "address": "127.0.0.1:1", "stats": ours},
        {"node": "b", "address": "127.0.0.1:2", "stats": v1},
    ]
    out = Console(width=200, record=True, file=io.StringIO())
    out.print(stats_table(rows))
    header, a, b = out.export_text().splitlines()
    assert header.split()[-5:] == ["REQUESTS", "ERRORS", "IN", "FLIGHT", "LATENCY_P50_US"]
    assert a.split()[-4:] == ["12", "3", "1", "250"]
    assert b.split()[-4:] == ["-", "-", "-", "-"]


def test_stats_table_shows_fields_it_does_not_know() -> None:
    stats = {"started": 0, "uptime": 5, "memory": 2048, "threads": 7, "gc": 1, "requests": 1}
    later = {**stats, "shed": 4, "breakers": {"open": 1}}  # as a newer server might add
    rows = [{"node": "a", "address": "127.0.0.1:1", "stats": later}]
    out = Console(width=240, record=True, file=io.StringIO())
    out.print(stats_table(rows))
    header, a = out.export_text().splitlines()
    assert header.split()[-2:] == ["SHED", "BREAKERS"]
    assert a.split()[-2:] == ["4", '{"open":1}']


def test_stats_table_names_the_fields_that_are_zero_everywhere_below_it() -> None:
    stats = {"started": 0, "uptime": 5, "memory": 2048, "threads": 7, "gc": 1, "requests": 1}
    a = {**stats, "shed": 0, "hedges": 2, "latency_p99_us": 0}
    b = {**stats, "shed": 0, "hedges": 0, "latency_p99_us": 0}
    rows = [
        {"node": "a", "address": "127.0.0.1:1", "stats": a},
        {"node": "b", "address": "127.0.0.1:2", "stats": b},
    ]
    out = Console(width=120, record=True, file=io.StringIO())
    out.print(stats_table(rows))
    header, row_a, row_b, note = out.export_text().splitlines()
    assert header.split()[-1] == "HEDGES"  # non-zero on one node: a column for all
    assert (row_a.split()[-1], row_b.split()[-1]) == ("2", "0")
    assert "SHED" not in header
    assert "LATENCY_P99_US" not in header
    assert note.startswith("0 on every node: shed, latency_p99_us")
