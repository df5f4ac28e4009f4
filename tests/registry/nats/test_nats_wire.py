"""The NATS registry's sans-IO parts: subject names, message decoding, the watcher's table."""

from __future__ import annotations

import logging

import pytest

from micro.registry import Node, Service, encode_service
from micro.registry._nats_table import NodeTable
from micro.registry._nats_wire import (
    Announcement,
    decode_answer,
    decode_event,
    encode_answer,
    encode_event,
    event_subject,
    query_subject,
    token,
    validate_prefix,
)


def _svc(name: str = "greeter", node: str = "n1", color: str = "red") -> Service:
    return Service(name, "1.0.0", {}, [], [Node(node, "127.0.0.1:1", {"color": color})])


@pytest.mark.parametrize(
    ("name", "subject_token"),
    [
        ("go.micro.srv.greeter", "go.micro.srv.greeter"),
        ("a b", "a%20b"),
        ("wild*card>", "wild%2Acard%3E"),
        ("a..b", "a.%.b"),
        (".lead", "%.lead"),
        ("100%", "100%25"),
        ("ü", "%FC"),
    ],
)
def test_names_become_safe_subject_tokens(name: str, subject_token: str) -> None:
    assert token(name) == subject_token
    subject = query_subject("micro.registry", name)
    assert subject == f"micro.registry.query.{subject_token}"
    assert all(part and " " not in part and part not in "*>" for part in subject.split("."))


def test_watch_all_uses_the_wildcard() -> None:
    assert event_subject("p", None) == "p.events.>"
    assert event_subject("p", "a.b") == "p.events.a.b"


@pytest.mark.parametrize("bad", ["", "a..b", "a b", "a.*", "a.>", ".a", "a."])
def test_bad_prefixes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        validate_prefix(bad)


def test_event_round_trip() -> None:
    ann = Announcement("create", _svc(), 2.5)
    assert decode_event(encode_event(ann), "s") == ann
    assert decode_answer(encode_answer([ann, ann]), "s") == [ann, ann]


def test_go_style_extras_and_nulls_are_accepted() -> None:
    raw = encode_service(_svc()).replace(b'"endpoints":[]', b'"endpoints":null,"extra":{"x":1}')
    got = decode_event(b'{"action":"update","service":' + raw + b',"ttl":null,"from":"go"}', "s")
    assert got is not None
    assert got.action == "update"
    assert got.service.nodes[0].id == "n1"
    assert got.ttl is None


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"action":"explode","service":{"name":"x"}}',
        b'{"action":"create"}',
        b'{"action":"create","service":{"name":"x","nodes":[]}}',
        b'{"action":"create","service":{"name":"x","nodes":[{"id":"a"}]}}',
        b'{"action":"create","service":' + encode_service(_svc()) + b',"ttl":-1}',
    ],
)
def test_corrupt_events_are_skipped_with_a_warning(
    data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="micro.registry.nats"):
        assert decode_event(data, "subj") is None
    assert "skipped a malformed" in caplog.text


def test_an_answer_keeps_its_good_entries(caplog: pytest.LogCaptureFixture) -> None:
    good = Announcement("refresh", _svc(), 3.0)
    data = b"[" + encode_event(good) + b',{"bogus":true},7]'
    with caplog.at_level(logging.WARNING, logger="micro.registry.nats"):
        assert decode_answer(data, "subj") == [good]
        assert decode_answer(b"{not a list", "subj") == []
    assert caplog.text.count("skipped a malformed") == 3


def test_table_reports_create_update_delete_and_ignores_refreshes() -> None:
    table = NodeTable()
    red, blue = _svc(color="red"), _svc(color="blue")
    assert table.apply(Announcement("create", red, 10), 0.0) == _result("create", red)
    assert table.apply(Announcement("refresh", red, 10), 1.0) is None
    assert table.apply(Announcement("refresh", blue, 10), 2.0) == _result("update", blue)
    assert table.apply(Announcement("delete", blue, None), 3.0) == _result("delete", blue)
    assert table.apply(Announcement("delete", blue, None), 4.0) is None  # unknown: quiet
    assert len(table) == 0


def test_table_expires_nodes_that_stop_announcing() -> None:
    table = NodeTable()
    a, b, forever = _svc(node="a"), _svc(node="b"), _svc(node="c")
    table.apply(Announcement("create", a, 1.0), 0.0)
    table.apply(Announcement("create", b, 1.0), 0.0)
    table.apply(Announcement("create", forever, None), 0.0)
    table.apply(Announcement("refresh", b, 1.0), 0.8)  # b heart-beats, a does not
    assert table.next_expiry() == 1.0
    assert table.expire(0.99) == []
    assert table.expire(1.0) == [_result("delete", a)]
    assert table.next_expiry() == pytest.approx(1.8)
    assert table.expire(5.0) == [_result("delete", b)]
    assert table.next_expiry() is None
    assert len(table) == 1


def test_seeding_is_silent_and_later_announcements_are_refreshes() -> None:
    table = NodeTable()
    svc = _svc()
    table.seed(Announcement("refresh", svc, 1.0), 0.0)
    assert table.apply(Announcement("refresh", svc, 1.0), 0.5) is None
    assert table.expire(1.6) == [_result("delete", svc)]


def _result(action: str, service: Service) -> object:
    from micro.registry import Result

    return Result(action, service)  # type: ignore[arg-type]
