"""Tool names: readable for the usual names, reversible for any."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from micro.toolkit.mcp.names import TOOL_NAME, parse_tool_name, tool_name

services = st.text(min_size=1, max_size=40)
endpoints = st.text(min_size=1, max_size=40)


@pytest.mark.parametrize(
    ("service", "endpoint", "name"),
    [
        ("greeter", "Greeter.SayHello", "greeter.Greeter.SayHello"),
        ("go.micro.srv.greeter", "Greeter.SayHello", "go.micro.srv.greeter.Greeter.SayHello"),
        ("user-service", "Users.Get", "user-service.Users.Get"),
        ("go_micro", "A_b.C", "go_5fmicro.A_5fb.C"),
        ("svc", "Ping", "svc..Ping"),
        ("svc", ".Ping", "svc.._2ePing"),
        ("svc", "Ping.", "svc..Ping_2e"),
        ("svc", "A.B.C", "svc.A.B_2eC"),
        ("caf\u00e9", "X.Y", "caf_c3_a9.X.Y"),
    ],
)
def test_known_names(service: str, endpoint: str, name: str) -> None:
    assert tool_name(service, endpoint) == name
    assert parse_tool_name(name) == (service, endpoint)


@given(services, endpoints)
def test_every_name_round_trips_in_mcps_alphabet(service: str, endpoint: str) -> None:
    name = tool_name(service, endpoint)
    assert TOOL_NAME.fullmatch(name) or len(name) > 128
    assert parse_tool_name(name) == (service, endpoint)


@pytest.mark.parametrize(
    "bad", ["services", "a.b", ".A.B", "a.B.", "a_.B.C", "a.B_zz.C", "a.B_ff.C", "a.B_5F.C"]
)
def test_names_no_tool_can_have_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"tool name|service\.Handler\.Method"):
        parse_tool_name(bad)
