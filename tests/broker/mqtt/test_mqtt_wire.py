"""The sans-IO parts of the MQTT broker: addresses, topics, properties, PUBACK order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from micro import plugins
from micro.broker import _mqtt_wire as wire
from micro.broker.mqtt import MqttBroker
from micro.errors import BrokerError


def test_addresses() -> None:
    assert wire.parse_address("") == ("127.0.0.1", 1883)
    assert wire.parse_address("h:1884") == ("h", 1884)
    assert wire.parse_address("h") == ("h", 1883)
    assert wire.parse_address("mqtt://h:2000") == ("h", 2000)
    assert wire.parse_address("tcp://h") == ("h", 1883)
    for bad in ("h:x", ":1", "h:0", "http://h:1", "mqtt://h:99999"):
        with pytest.raises(BrokerError, match="mqtt: address"):
            wire.parse_address(bad)


def test_options_and_plugin_table() -> None:
    broker = plugins.create("broker", "mqtt", address="127.0.0.1:1999")
    assert isinstance(broker, MqttBroker)
    assert broker.address == "127.0.0.1:1999"
    assert "durable" not in broker.capabilities
    assert "durable" in MqttBroker(qos=1, client_id="svc").capabilities
    assert "durable" not in MqttBroker(qos=1).capabilities  # random ids: nobody resumes
    with pytest.raises(BrokerError, match="qos"):
        MqttBroker(qos=2)
    with pytest.raises(BrokerError, match="concurrency"):
        MqttBroker(concurrency=0)


def test_topics_and_filters() -> None:
    assert wire.check_topic("user.created") == "user.created"
    for bad in ("", "a/+", "a/#", "$SYS/x", "a\x00b"):
        with pytest.raises(BrokerError):
            wire.check_topic(bad)
    for good in ("a/+/c", "a/#", "#", "+", "user.created"):
        assert wire.check_filter(good) == good
    for bad in ("a/b#", "a/#/c", "a+/b", ""):
        with pytest.raises(BrokerError):
            wire.check_filter(bad)
    assert wire.subscription_filter("jobs/run", "workers") == "$share/workers/jobs/run"
    assert wire.subscription_filter("jobs/run", None) == "jobs/run"
    for bad_queue in ("", "a/b", "q+", "q#"):
        with pytest.raises(BrokerError, match="queue name"):
            wire.subscription_filter("t", bad_queue)


def test_session_ids_are_stable_and_distinct() -> None:
    a = wire.session_id("svc", "t", None)
    assert a == wire.session_id("svc", "t", None)
    assert a != wire.session_id("svc", "t", "q")
    assert a != wire.session_id("svc", "u", None)
    assert a.startswith("svc-")
    assert wire.session_id("svc", "t", None, 1) == a + "-1"


@given(st.dictionaries(st.text(min_size=1), st.text()))
def test_header_round_trip(header: dict[str, str]) -> None:
    assert wire.header_from(wire.publish_properties(header)) == header


def test_content_type_property_fills_the_header() -> None:
    props = wire.publish_properties({})
    props.ContentType = "application/json"
    assert wire.header_from(props) == {"Content-Type": "application/json"}
    assert wire.header_from(None) == {}


def test_acks_go_out_in_arrival_order() -> None:
    sent: list[int] = []
    order = wire.AckOrder(sent.append)
    for mid in (5, 6, 7):
        order.add(mid)
    order.done(7)
    order.done(99)  # unknown: ignored
    assert sent == []
    order.done(5)
    assert sent == [5]
    order.done(6)
    assert sent == [5, 6, 7]
    assert len(order) == 0
    order.add(8)
    order.clear()
    order.done(8)
    assert sent == [5, 6, 7]
