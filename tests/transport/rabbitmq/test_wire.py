"""The rabbitmq transport's addresses, names and settings (no server), and a listener
address already in use (the shared server)."""

from __future__ import annotations

import uuid

import pytest

from micro import plugins
from micro.errors import ConnectError
from micro.server._addr import advertise_address
from micro.settings import load
from micro.transport import _rabbitmq_wire as wire
from micro.transport.rabbitmq import RabbitmqTransport
from tests.transport.rabbitmq.conftest import MakeTransport


@pytest.mark.parametrize("address", ["", ":0", "127.0.0.1:0", "[::1]:0", "0.0.0.0:0"])
def test_port_zero_picks_a_fresh_uuid(address: str) -> None:
    first, second = wire.queue_name(address), wire.queue_name(address)
    assert first != second
    assert str(uuid.UUID(first)) == first  # go-plugins names its listeners by a UUID too


@pytest.mark.parametrize("address", ["greeter-1", "127.0.0.1:8080", "svc.a:b/c"])
def test_another_address_is_the_queue_name_itself(address: str) -> None:
    assert wire.queue_name(address) == address


@pytest.mark.parametrize("address", ["amq.gen-1", "x" * 256])
def test_a_name_rabbitmq_refuses_is_a_connect_error(address: str) -> None:
    with pytest.raises(ConnectError, match="listen"):
        wire.queue_name(address)


def test_addresses_are_urls_or_host_port_comma_separated() -> None:
    assert wire.urls("") == ["amqp://guest:guest@127.0.0.1:5672/"]
    assert wire.urls("a:1, amqps://u:p@b:5671/v") == [
        "amqp://guest:guest@a:1/",
        "amqps://u:p@b:5671/v",
    ]
    assert wire.urls(["c:2"]) == ["amqp://guest:guest@c:2/"]
    with pytest.raises(ValueError, match="amqp"):
        wire.urls("http://x:1/")
    assert wire.safe_url("amqp://u:secret@h:1/") == "amqp://***@h:1/"


def test_bad_options_are_value_errors() -> None:
    with pytest.raises(ValueError, match="exchange"):
        RabbitmqTransport(exchange="no*stars")
    with pytest.raises(ValueError, match="probe_interval"):
        RabbitmqTransport(probe_interval=0)
    with pytest.raises(ValueError, match="not host:port"):
        RabbitmqTransport(address="nowhere")


def test_a_queue_name_is_advertised_as_it_is() -> None:
    name = "rabbitmq://5f0c-queue"  # a listener's address
    assert advertise_address(name) == "5f0c-queue"
    assert advertise_address(name, "other-name") == "other-name"
    assert wire.check_address(name) == wire.check_address("5f0c-queue") == "5f0c-queue"
    assert wire.queue_name(name) == "5f0c-queue"
    with pytest.raises(ValueError, match="no port"):
        advertise_address("nowhere")  # a plain string without a port is still an error


def test_settings_reach_the_transport() -> None:
    settings = load(
        environ={
            "MICRO_TRANSPORT": "rabbitmq",
            "MICRO_TRANSPORT_ADDRESS": "10.0.0.1:5673",
            "MICRO_TRANSPORT_EXCHANGE": "calls",
            "MICRO_TRANSPORT_MAX_BODY": "20M",
            "MICRO_TRANSPORT_IDLE_TIMEOUT": "30s",
        }
    )
    transport = plugins.create("transport", settings=settings)
    assert isinstance(transport, RabbitmqTransport)
    assert transport.address == "amqp://guest:guest@10.0.0.1:5673/"
    assert transport.exchange == "calls"
    assert transport.max_body == 20 * 1024 * 1024
    assert transport.idle_timeout == 30.0


@pytest.mark.integration
async def test_a_name_in_use_is_refused(make_transport: MakeTransport) -> None:
    async def nothing(sock: object) -> None:
        pass

    first, second = make_transport(), make_transport()
    listener = await first.listen("", nothing)
    with pytest.raises(ConnectError, match="address in use"):
        await second.listen(listener.address, nothing)
    await listener.close()


@pytest.mark.integration
async def test_no_rabbitmq_is_a_connect_error_at_once() -> None:
    transport = RabbitmqTransport(address="127.0.0.1:1")
    try:
        with pytest.raises(ConnectError, match="cannot connect"):
            await transport.dial("somewhere", timeout=5.0)
    finally:
        await transport.close()
