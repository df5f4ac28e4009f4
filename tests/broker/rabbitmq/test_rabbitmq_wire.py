"""The sans-IO parts of the RabbitMQ broker: addresses, names, header mapping."""

from __future__ import annotations

import datetime

import pytest

from micro import plugins
from micro.broker import _rabbitmq_wire as wire
from micro.broker.rabbitmq import RabbitmqBroker
from micro.errors import BrokerError


def test_addresses() -> None:
    assert wire.amqp_url("") == wire.DEFAULT_ADDRESS
    assert wire.amqp_url("10.1.2.3:5673") == "amqp://guest:guest@10.1.2.3:5673/"
    assert wire.amqp_url("amqps://u:p@h:1/v") == "amqps://u:p@h:1/v"
    for bad in ("nohost", "h:port", "http://h:1/"):
        with pytest.raises(BrokerError, match="rabbitmq: address"):
            wire.amqp_url(bad)


def test_plugin_table_builds_it_with_the_env_address() -> None:
    broker = plugins.create("broker", "rabbitmq", address="127.0.0.1:5999")
    assert isinstance(broker, RabbitmqBroker)
    assert broker.address == "amqp://guest:guest@127.0.0.1:5999/"
    assert "dead_letter" in broker.capabilities


def test_queue_names() -> None:
    assert wire.group_queue("micro", "user.created", "mailer") == "micro.user.created.mailer"
    assert wire.dead_letter_queue("micro.a.q") == "micro.a.q.dlq"
    star = wire.group_queue("micro", "user.*", "q")
    assert star.startswith("micro.user._-")  # '*' is not allowed in a queue name
    assert star != wire.group_queue("micro", "user._", "q")
    with pytest.raises(BrokerError, match="over 255"):
        wire.group_queue("micro", "t" * 300, "q")
    with pytest.raises(BrokerError, match="empty"):
        wire.check_name("topic", "")
    with pytest.raises(BrokerError, match="characters"):
        RabbitmqBroker(exchange="bad*name")
    with pytest.raises(BrokerError, match="prefetch"):
        RabbitmqBroker(prefetch=0)


def test_headers_out_and_back() -> None:
    header = {"Content-Type": "application/json", "Micro-Id": "m-1", "X-Trace": "t"}
    props = wire.to_amqp(header)
    assert props == {"headers": header, "content_type": "application/json", "message_id": "m-1"}
    assert wire.from_amqp(props["headers"], "application/json", "m-1") == header


def test_foreign_headers() -> None:
    when = datetime.datetime(2020, 1, 2, 3, 4, 5)
    raw = {
        "n": 7,
        "ok": True,
        "b": b"bytes",
        "when": when,
        "x-death": [{"count": 1}],
        "x-first-death-reason": "rejected",
        "table": {"a": 1},
    }
    header = wire.from_amqp(raw, "text/plain", "id-9")
    assert header == {
        "n": "7",
        "ok": "true",
        "b": "bytes",
        "when": str(when),
        "Content-Type": "text/plain",
        "Micro-Id": "id-9",
    }
    assert wire.from_amqp(None, None, None) == {}
    with pytest.raises(ValueError, match="utf-8"):
        wire.from_amqp({"bad": b"\xff\xfe"}, None, None)
