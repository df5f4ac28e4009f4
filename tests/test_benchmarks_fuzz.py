"""benchmarks.fuzz without sockets: a seed replays the inputs, answers are read right, the gate."""

from __future__ import annotations

import itertools

from benchmarks._fuzz_cases import Case, Mutations, Request
from benchmarks._fuzz_io import NOT_HTTP, Outcome, parse_answers
from benchmarks._fuzz_report import Result

BASE = Request(b"POST", b"/", ((b"Host", b"127.0.0.1"), (b"Timeout", b"5")))
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
MUCP_500 = b'HTTP/1.1 200 OK\r\nMicro-Error: {"id":"x","code":500}\r\nContent-Length: 0\r\n\r\n'


def inputs(seed: int, count: int = 300) -> list[Case]:
    return list(itertools.islice(Mutations(BASE, max_body=1000, seed=seed), count))


def test_a_seed_replays_the_same_inputs_and_another_seed_does_not() -> None:
    assert inputs(3) == inputs(3)
    assert inputs(3) != inputs(4)


def test_every_kind_of_input_takes_its_turn() -> None:
    makers = len(Mutations(BASE, max_body=1000, seed=1).makers)
    kinds = {case.kind.split(":")[0] for case in inputs(1, makers)}
    assert len(kinds) == makers


def test_pipelined_answers_are_split_and_mucp_errors_count_by_their_code() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    assert parse_answers(interim + OK + MUCP_500, head_only=False, mucp=True) == ([200, 500], True)
    assert parse_answers(OK + MUCP_500, head_only=False, mucp=False) == ([200, 200], True)


def test_an_unfinished_or_foreign_answer_is_told_apart() -> None:
    assert parse_answers(OK[:-1], head_only=False, mucp=False) == ([200], False)
    assert parse_answers(OK[:-2], head_only=True, mucp=False) == ([200], True)
    assert parse_answers(b"SSH-2.0\r\n\r\n", head_only=False, mucp=False) == ([NOT_HTTP], True)


def test_the_gate_excuses_only_a_504_to_a_fuzzed_timeout() -> None:
    result = Result("gateway", valid_start=True, valid_end=True)
    result.record(Case("header:Timeout", b"x"), Outcome([504], "answered"))
    assert result.faults() == []
    result.record(Case("header:Micro-Service", b"x"), Outcome([504], "answered"))
    result.record(Case("header:Timeout", b"x"), Outcome([200, 500], "answered"))
    assert result.faults() == ["2 answers 5xx"]
    assert result.answers == {"5xx": 2, "2xx": 1}
