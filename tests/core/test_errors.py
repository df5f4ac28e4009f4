from __future__ import annotations

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
def test_helpers_round_trip_through_parse(make, cls, code) -> None:  # type: ignore[no-untyped-def]
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
    err = errors.MicroError.parse(
        b'{"id":"x","code":503,"detail":"busy","status":"Service Unavailable"}'
    )
    assert type(err) is errors.MicroError
    assert (err.code, err.status, err.detail) == (503, "Service Unavailable", "busy")


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


def test_to_json_escapes_lone_surrogates_instead_of_raising() -> None:
    # a header byte that was not UTF-8 (kept by surrogateescape) echoed into a detail
    err = errors.NotFound("service gr\udcffeter, stray \ud800", id="id\udcfe", status="\udc80")
    back = errors.MicroError.parse(err.to_json())
    assert back.detail == "service gr\\xffeter, stray \\ud800"
    assert (back.id, back.code, back.status) == ("id\\xfe", 404, "\\x80")
    assert str(err) == err.to_json()
