"""The ``slack`` input: its event filtering, and the real ``micro bot --inputs slack``
process against a LOCAL STAND-IN for Slack (tests/toolkit/bot/slack_standin.py), written
from Slack's published Web API and Socket Mode documentation since no Slack is reachable
here, with mDNS on 127.0.0.1 and a real greeter process."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from micro.settings import BOT_GROUPS, load
from micro.toolkit.bot import slack as slack_input
from micro.toolkit.bot.input import create_input
from micro.toolkit.bot.slack import parse_event
from micro.toolkit.cli.app import CliError
from tests.toolkit.bot.slack_standin import APP_TOKEN, BOT_TOKEN, BOT_USER, SlackStandIn
from tests.toolkit.cli.conftest import GREETER, MICRO, Spawn, base_env, spawn, unique

__all__ = ["spawn"]


def event(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "user": "UALICE", "text": text, "ts": "1.1", **extra}


# -- filtering ---------------------------------------------------------------------------


def test_direct_message_is_kept_whole_and_answered_outside_a_thread() -> None:
    got = parse_event(event("list  services", channel="D123", channel_type="im"), BOT_USER)
    assert got is not None
    assert (got.text, got.sender, got.channel, got.meta["thread_ts"]) == (
        "list services", "UALICE", "D123", ""
    )  # fmt: skip


def test_direct_message_in_a_thread_stays_in_it() -> None:
    got = parse_event(event("ping", channel="D123", thread_ts="0.5"), BOT_USER)
    assert got is not None
    assert got.meta["thread_ts"] == "0.5"


def test_channel_mention_is_stripped_and_answered_in_its_thread() -> None:
    text = f"<@{BOT_USER}> call x X.Y {{&quot;a&quot;: &lt;1&gt; &amp;}}"
    got = parse_event(event(text, type="app_mention", channel="C1"), BOT_USER)
    assert got is not None
    assert got.text == "call x X.Y {&quot;a&quot;: <1> &}"
    assert got.meta["thread_ts"] == "1.1"


def test_a_mention_with_a_name_is_stripped_too() -> None:
    got = parse_event(event(f"<@{BOT_USER}|microbot> ping", channel="G1"), BOT_USER)
    assert got is not None
    assert got.text == "ping"


@pytest.mark.parametrize(
    "raw",
    [
        event("ping", channel="C1"),  # a channel message not mentioning the bot
        event("<@UOTHER> ping", channel="C1"),  # mentioning someone else
        event("ping", channel="D1", user=BOT_USER),  # its own
        event("ping", channel="D1", bot_id="B9"),  # another bot's
        event("ping", channel="D1", subtype="message_changed"),  # an edit
        event("ping", channel="D1", type="reaction_added"),
        event(f"<@{BOT_USER}>", channel="C1"),  # a mention and nothing else
        {"type": "message", "channel": "D1", "text": "ping"},  # no user
    ],
)
def test_ignored(raw: dict[str, Any]) -> None:
    assert parse_event(raw, BOT_USER) is None


# -- the process -------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn().start()
    try:
        yield standin
    finally:
        standin.stop()


def bot(slack: SlackStandIn, token: str = BOT_TOKEN, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MICRO, "bot", "--inputs", "slack", "--slack-api-url", slack.api_url,
         "--slack-token", token],
        env=base_env(MICRO_SLACK_APP_TOKEN=APP_TOKEN, **env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=5)
    return err


def posts_to(slack: SlackStandIn, channel: str) -> list[dict[str, Any]]:
    return [p for p in slack.posts if p.get("channel") == channel]


@pytest.mark.integration
@pytest.mark.slow
def test_slack_bot_answers_dms_and_mentions_over_mdns(slack: SlackStandIn, spawn: Spawn) -> None:
    name = unique("greeter")
    spawn(GREETER, name)
    proc = bot(slack)
    try:
        slack.wait_for(lambda: "hello" in slack.calls)
        assert slack.calls[:2] == ["auth.test", "apps.connections.open"]
        # a DM: answered in the same channel, outside a thread
        deadline = time.monotonic() + 20
        while True:  # until the greeter has announced itself
            before = len(posts_to(slack, "D100"))
            sent = slack.send_event(event("list services", channel="D100", channel_type="im"))
            slack.wait_for(lambda n=before: len(posts_to(slack, "D100")) > n)
            slack.wait_for(lambda e=sent: e in slack.acks)
            if name in posts_to(slack, "D100")[-1]["text"]:
                break
            assert time.monotonic() < deadline, f"{name} never listed"
            time.sleep(0.5)
        assert not posts_to(slack, "D100")[-1].get("thread_ts")
        call = f'call {name} Greeter.SayHello {{"name":"John"}}'
        slack.send_event(event(call, channel="D100", channel_type="im", ts="2.2"))
        slack.wait_for(lambda: any("Hello John" in p["text"] for p in posts_to(slack, "D100")))
        # ignored: a channel message not mentioning it, its own message, another bot's
        ignored = [
            slack.send_event(event("ping", channel="C200", ts="3.3")),
            slack.send_event(event("ping", channel="D100", user=BOT_USER, ts="3.4")),
            slack.send_event(event("ping", channel="D100", bot_id="B7", ts="3.5")),
        ]
        slack.wait_for(lambda: all(e in slack.acks for e in ignored))
        # a mention (as Slack sends it twice: message and app_mention): one reply, in its thread
        mention = f"<@{BOT_USER}> echo hi there"
        slack.send_event(event(mention, channel="C200", channel_type="channel", ts="4.4"))
        slack.send_event(event(mention, type="app_mention", channel="C200", ts="4.4"))
        slack.wait_for(lambda: posts_to(slack, "C200"))
        time.sleep(0.5)  # room for a wrong second reply or a late "pong"
        assert [(p["text"], p.get("thread_ts")) for p in posts_to(slack, "C200")] == [
            ("hi there", "4.4")
        ]
        assert len(posts_to(slack, "D100")) == len(slack.posts) - 1  # no "pong" for 3.4, 3.5
        assert proc.poll() is None
    finally:
        stop(proc)


@pytest.mark.integration
def test_bad_token_stops_with_one_line(slack: SlackStandIn) -> None:
    proc = bot(slack, token="xoxb-wrong", MICRO_REGISTRY="memory")
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert lines == ["micro bot: slack: auth.test failed: invalid_auth"], err
    assert "apps.connections.open" not in slack.calls


@pytest.mark.integration
def test_missing_app_token_stops_with_one_line(slack: SlackStandIn) -> None:
    done = subprocess.run(
        [MICRO, "bot", "--inputs", "slack", "--slack-api-url", slack.api_url],
        env=base_env(MICRO_REGISTRY="memory", MICRO_SLACK_TOKEN=BOT_TOKEN),
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "micro bot: slack: no app-level token; set --slack-app-token or MICRO_SLACK_APP_TOKEN "
        "(xapp-..., with connections:write)"
    ]
    assert slack.calls == []


def settings_for(slack: SlackStandIn, url: str = "") -> Any:
    return load(
        groups=BOT_GROUPS,
        environ={"MICRO_SLACK_TOKEN": BOT_TOKEN, "MICRO_SLACK_APP_TOKEN": APP_TOKEN,
                 "MICRO_SLACK_API_URL": url or slack.api_url.rstrip("/")},
    )  # fmt: skip


async def test_a_wrong_api_url_is_one_line(slack: SlackStandIn) -> None:
    source = create_input("slack", settings_for(slack, f"http://127.0.0.1:{slack.port}/nope/"))
    with pytest.raises(CliError, match=r"^slack: auth.test failed: HTTP 404$"):
        await source.connect()
    await source.close()


async def test_a_slack_that_does_not_answer_stops_it_in_bounded_time(
    slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack.auth_delay = 1.5
    monkeypatch.setattr(slack_input, "CONNECT_TIMEOUT", 0.3)
    source = create_input("slack", settings_for(slack))
    started = time.monotonic()
    with pytest.raises(CliError, match=r"^slack: auth.test: no answer within 0.3s$"):
        await source.connect()
    assert time.monotonic() - started < 3
    await source.close()
