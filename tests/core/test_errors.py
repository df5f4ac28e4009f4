from __future__ import annotations

import asyncio
import re

import pytest

from micro import errors


def test_wire_json_matches_go_micro() -> None:
    err = errors.bad_request("go.micro.srv.greeter", 'bad name "John"')
    # the exact Micro-Error value a go-micro v1.0 server sent (wire sample 5.2)
    assert err.to_json() == (
        '{"id":"go.micro.srv.greeter","code":400,"detail":"bad name \\"John\\"",'
        '"status":"Bad Request"}'
    )


@pytest.mark.parametrize(
    ("make", "cls", "code"),
    [
        (errors.bad_request, errors.BadRequest, 400),
        (errors.unauthorized, errors.Unauthorized, 401),
        (errors.forbidden, errors.Forbidden, 403),
        (errors.not_found, errors.NotFound, 404),
        (errors.method_not_allowed, errors.MethodNotAllowed, 405),
        (errors.timeout, errors.Timeout, 408),
        (errors.conflict, errors.Conflict, 409),
        (errors.internal, errors.InternalServerError, 500),
    ],
)
def test_helpers_round_trip_through_parse(make, cls, code) -> None:
    err = make("svc", "went wrong")
    assert isinstance(err, cls)
    assert err.code == code
    back = errors.MicroError.parse(err.to_json())
    assert type(back) is cls
    assert back == err


def test_parse_plain_text_gives_code_zero() -> None:
    err = errors.MicroError.parse("rpc: can't find method Nope")
    assert type(err) is errors.MicroError
    assert err.code == 0
    assert err.detail == "rpc: can't find method Nope"
    assert err.status == ""


def test_parse_unknown_code_keeps_code_and_status() -> None:
    err = errors.MicroError.parse(b'{"id":"x","code":418,"detail":"busy","status":"I\'m a Teapot"}')
    assert type(err) is errors.MicroError
    assert (err.code, err.status, err.detail) == (418, "I'm a Teapot", "busy")


def test_parse_503_is_service_unavailable() -> None:
    err = errors.MicroError.parse(b'{"id":"x","code":503,"detail":"shed"}')
    assert type(err) is errors.ServiceUnavailable


def test_timeout_is_a_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        raise errors.timeout("svc", "late")


def test_subclasses_keep_parent_codes() -> None:
    assert isinstance(errors.ConnectionClosed("x"), errors.ConnectError)
    assert errors.ConnectionClosed("x").code == 500
    assert errors.ServiceNotFound("x").code == 404
    assert errors.CodecError("x").code == 400
    # parse maps a code to the first class declared for it, never to a narrower subclass
    assert type(errors.MicroError.parse(errors.ServiceNotFound("x").to_json())) is errors.NotFound


def test_equal_errors_hash_alike_and_work_in_sets_and_dicts() -> None:
    sent = errors.not_found("greeter", "no such user")
    received = errors.MicroError.parse(sent.to_json())
    assert received == sent
    assert hash(received) == hash(sent)
    assert {sent, received} == {sent}
    seen: dict[errors.MicroError, str] = {sent: "seen"}
    assert seen[received] == "seen"
    other = errors.not_found("greeter", "no such order")
    assert other != sent
    assert len({sent, other}) == 2


def test_equality_is_the_wire_fields_not_the_class() -> None:
    # a ConnectError and a 500 parsed from the wire carry the same fields: equal, one key
    local = errors.ConnectError("refused", id="x")
    wire = errors.MicroError.parse(local.to_json())
    assert type(wire) is errors.InternalServerError
    assert wire == local
    assert hash(wire) == hash(local)


def test_plugin_not_found_is_in_the_tree_and_still_in_plugins() -> None:
    from micro import plugins

    assert plugins.PluginNotFound is errors.PluginNotFound
    err = errors.PluginNotFound("unknown registry 'x'")
    assert isinstance(err, errors.InternalServerError)
    assert isinstance(err, LookupError)
    assert err.code == 500


def test_request_timeout_is_a_408_but_not_a_deadline() -> None:
    err = errors.RequestTimeout("body not received within 30s")
    assert err.code == 408
    assert err.status == "Request Timeout"
    assert not isinstance(err, TimeoutError | errors.Timeout)
    assert type(errors.MicroError.parse(err.to_json())) is errors.Timeout


def _drawn_parents() -> dict[str, str]:
    """Each class of the docstring's drawing mapped to the class drawn as its parent."""
    assert errors.__doc__ is not None
    drawing = errors.__doc__.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in drawing.splitlines():
        match = re.search(r"[A-Z]\w+", line)
        assert match, line
        while stack and stack[-1][0] >= match.start():
            stack.pop()
        if stack:
            parents[match.group()] = stack[-1][1]
        stack.append((match.start(), match.group()))
    return parents


def test_the_docstring_draws_every_error_class_under_its_parent() -> None:
    classes = {
        name: cls
        for name in errors.__all__
        if isinstance(cls := getattr(errors, name), type) and issubclass(cls, errors.MicroError)
    }
    drawn = _drawn_parents()
    assert set(drawn) == set(classes) - {"MicroError"}
    for name, parent in drawn.items():
        assert classes[name].__mro__[1].__name__ == parent, name


class DriverError(Exception):
    """A driver's own base exception."""


def test_translate_maps_driver_failures_to_the_kind_chained() -> None:
    cause = ConnectionRefusedError("refused")
    with pytest.raises(errors.RegistryError) as info:
        with errors.translate(errors.RegistryError, "etcd register greeter", id="reg"):
            raise cause
    assert info.value.detail == "etcd register greeter: refused"
    assert info.value.id == "reg"
    assert info.value.__cause__ is cause


@pytest.mark.parametrize("raised", [TimeoutError(), ConnectionResetError(), DriverError("gone")])
def test_translate_covers_timeouts_and_the_drivers_errors(raised: Exception) -> None:
    with pytest.raises(
        errors.BrokerError, match=r"publish x: (TimeoutError|Connection|gone)"
    ) as info:
        with errors.translate(errors.BrokerError, "publish x", driver_errors=(DriverError,)):
            raise raised
    assert info.value.__cause__ is raised


@pytest.mark.parametrize(
    "raised",
    [errors.ServiceNotFound("no such service"), asyncio.CancelledError(), ValueError("a bug")],
)
def test_translate_never_wraps_micro_errors_cancellation_or_bugs(raised: BaseException) -> None:
    with pytest.raises(type(raised)) as info:
        with errors.translate(errors.RegistryError, "lookup", driver_errors=(DriverError,)):
            raise raised
    assert info.value is raised


def test_translate_is_silent_when_nothing_fails() -> None:
    with errors.translate(errors.RegistryError, "lookup"):
        value = 1
    assert value == 1


def test_to_json_escapes_lone_surrogates_instead_of_raising() -> None:
    # a header byte that was not UTF-8 (kept by surrogateescape) echoed into a detail
    err = errors.NotFound("service gr\udcffeter, stray \ud800", id="id\udcfe", status="\udc80")
    back = errors.MicroError.parse(err.to_json())
    assert back.detail == "service gr\\xffeter, stray \\ud800"
    assert (back.id, back.code, back.status) == ("id\\xfe", 404, "\\x80")
    assert str(err) == err.to_json()
