"""The transport contract over the nats transport (the shared NATS server)."""

from __future__ import annotations

import pytest

from micro.testing.transport import CHECKS, check_transport
from micro.transport.nats import NatsTransport
from tests.servers import nats_url

pytestmark = pytest.mark.integration

MAX_BODY = 4 * 1024 * 1024  # over the server's 1 MB max_payload: sent in pieces


def make() -> NatsTransport:
    return NatsTransport(address=nats_url())


@pytest.mark.parametrize("check", sorted(CHECKS))
async def test_nats_transport_contract(check: str) -> None:
    await CHECKS[check](make, MAX_BODY)


async def test_check_transport_runs_every_check_over_nats() -> None:
    await check_transport(make, max_body=MAX_BODY)
