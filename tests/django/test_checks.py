"""System checks: clean with the example settings, each documented id when misconfigured."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from relaybridge import checks

APP_TOKEN = "rlk_portal_t0p53cr3t"


def ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


@pytest.fixture(autouse=True)
def no_relay_env(monkeypatch: Any) -> None:
    monkeypatch.delenv("RELAY_APP_TOKEN", raising=False)
    monkeypatch.delenv("RELAY_URL", raising=False)


def test_check_command_is_clean_with_the_example_settings(monkeypatch: Any) -> None:
    monkeypatch.setenv("RELAY_APP_TOKEN", APP_TOKEN)
    out = StringIO()
    call_command("check", "--fail-level", "WARNING", stdout=out, stderr=out)
    assert "no issues" in out.getvalue()


def test_embedded_default_only_warns_about_the_emulator() -> None:
    out = StringIO()
    call_command("check", stdout=out, stderr=out)  # raises on any error
    assert "relaybridge.W001" in out.getvalue()
    assert "relaybridge.E" not in out.getvalue()


def test_w001_missing_token() -> None:
    assert ids(checks.check_relay_credentials()) == ["relaybridge.W001"]


def test_e007_agent_token_as_app_token(monkeypatch: Any) -> None:
    monkeypatch.setenv("RELAY_APP_TOKEN", "rla_athena_s3cr3t")
    messages = checks.check_relay_credentials()
    assert ids(messages) == ["relaybridge.E007"]
    assert "s3cr3t" not in str(messages[0])


def test_e001_plain_ws_url_without_debug(monkeypatch: Any, settings: Any) -> None:
    monkeypatch.setenv("RELAY_URL", "ws://relay.example/v1/ws/app")
    settings.DEBUG = True
    assert checks.check_relay_url() == []
    settings.DEBUG = False
    assert ids(checks.check_relay_url()) == ["relaybridge.E001"]
    monkeypatch.setenv("RELAY_URL", "wss://relay.example/v1/ws/app")
    assert checks.check_relay_url() == []


def test_e002_no_channel_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}
    assert ids(checks.check_channel_layer()) == ["relaybridge.E002"]
    del settings.CHANNEL_LAYERS
    assert ids(checks.check_channel_layer()) == ["relaybridge.E002"]


REDIS_LAYER = "channels_redis.core.RedisChannelLayer"
PATIENT_HOSTS = {"hosts": [{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 30}]}


def test_w002_redis_layer_without_shared_buffer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": REDIS_LAYER, "CONFIG": PATIENT_HOSTS}}
    settings.RELAYBRIDGE_REDIS_URL = None
    assert ids(checks.check_channel_layer()) == ["relaybridge.W002"]
    settings.RELAYBRIDGE_REDIS_URL = "redis://127.0.0.1:6379/0"
    assert checks.check_channel_layer() == []


PUBSUB_LAYER = "channels_redis.pubsub.RedisPubSubChannelLayer"


def test_e008_stream_layer_alias_must_exist(settings: Any) -> None:
    settings.RELAYBRIDGE_REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": REDIS_LAYER, "CONFIG": PATIENT_HOSTS}}
    settings.RELAYBRIDGE_STREAM_LAYER = "streams"
    [error] = checks.check_channel_layer()
    assert error.id == "relaybridge.E008" and "'streams'" in error.msg
    settings.CHANNEL_LAYERS["streams"] = {"BACKEND": PUBSUB_LAYER, "CONFIG": PATIENT_HOSTS}
    assert checks.check_channel_layer() == []


def test_w003_looks_at_the_stream_layer_too(settings: Any) -> None:
    import redis

    impatient = {"hosts": ["redis://127.0.0.1:6379/0"]}
    settings.RELAYBRIDGE_REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.RELAYBRIDGE_STREAM_LAYER = "streams"
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": REDIS_LAYER, "CONFIG": PATIENT_HOSTS},
        "streams": {"BACKEND": REDIS_LAYER, "CONFIG": impatient},
    }
    expected = ["relaybridge.W003"] if int(redis.__version__.split(".")[0]) >= 8 else []
    assert ids(checks.check_channel_layer()) == expected
    # The Pub/Sub layer never blocks on Redis, so its socket timeout does not matter.
    settings.CHANNEL_LAYERS["streams"] = {"BACKEND": PUBSUB_LAYER, "CONFIG": impatient}
    assert checks.check_channel_layer() == []


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"hosts": ["redis://127.0.0.1:6379/0"]},
        {"hosts": [{"address": "redis://127.0.0.1:6379/0"}]},
        {"hosts": [{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 5}]},
    ],
)
def test_w003_redis_py_8_default_socket_timeout(settings: Any, config: dict[str, Any]) -> None:
    import redis

    settings.RELAYBRIDGE_REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": REDIS_LAYER, "CONFIG": config}}
    expected = ["relaybridge.W003"] if int(redis.__version__.split(".")[0]) >= 8 else []
    assert ids(checks.check_channel_layer()) == expected
    for patient in (PATIENT_HOSTS, {"hosts": [{"address": "redis://x", "socket_timeout": None}]}):
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": REDIS_LAYER, "CONFIG": patient}}
        assert checks.check_channel_layer() == []


@pytest.mark.redis
def test_a_layer_configured_as_w003_asks_waits_past_five_seconds(redis_url: str) -> None:
    """The remedy W003 gives works: an idle receive outlasts channels_redis's 5 s block."""
    import asyncio

    from channels_redis.core import RedisChannelLayer

    async def idle_receive() -> str:
        layer = RedisChannelLayer(hosts=[{"address": redis_url, "socket_timeout": 30}])
        try:
            await asyncio.wait_for(layer.receive("relaybridge.test.idle"), 7)
        except TimeoutError:
            return "still waiting"
        finally:
            await layer.flush()
        return "received"

    assert asyncio.run(idle_receive()) == "still waiting"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "RELAYBRIDGE_COMMENT_MODEL is not set."),
        ("tasks.Nothing", "but app 'tasks' has no model 'Nothing'"),
        ("nowhere.Comment", "but no installed app has the label 'nowhere'"),
        ("Comment", "not 'app_label.ModelName'"),
    ],
)
def test_e003_comment_model_unset_or_unknown(
    settings: Any, value: str | None, problem: str
) -> None:
    if value is None:
        del settings.RELAYBRIDGE_COMMENT_MODEL
    else:
        settings.RELAYBRIDGE_COMMENT_MODEL = value
    (message,) = checks.check_comment_model()
    assert message.id == "relaybridge.E003"
    assert problem in message.msg
    assert message.hint is not None and "RELAYBRIDGE_COMMENT_MODEL = " in message.hint
    assert checks.check_adapter() == []  # said once, not again by the adapter


def test_e003_not_raised_for_the_example_comment_model() -> None:
    assert checks.check_comment_model() == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"RELAYBRIDGE_BODY_FIELD": "text"},
        {"RELAYBRIDGE_AUTHOR_FIELD": "task"},  # not nullable
        {"RELAYBRIDGE_AGENT_FIELD": "created_at"},
    ],
)
def test_e003_comment_model_lacks_what_the_adapter_needs(
    settings: Any, overrides: dict[str, str]
) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    messages = checks.check_adapter()
    assert messages and set(ids(messages)) == {"relaybridge.E003"}


def test_e005_bad_adapter(settings: Any) -> None:
    settings.RELAYBRIDGE_ADAPTER = "nowhere.Adapter"
    assert ids(checks.check_adapter()) == ["relaybridge.E005"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RELAYBRIDGE_APP_TOKEN", "anything"),
        ("RELAYBRIDGE_AGENT_TOKEN", "rla_athena_x"),
        ("RELAY_APP_TOKEN", APP_TOKEN),
        ("RELAYBRIDGE_SECRET", APP_TOKEN),
    ],
)
def test_e004_token_in_settings(settings: Any, name: str, value: str) -> None:
    setattr(settings, name, value)
    messages = checks.check_tokens_not_in_settings()
    assert ids(messages) == ["relaybridge.E004"]
    assert value not in str(messages[0]) and value not in (messages[0].hint or "")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RELAYBRIDGE_MAX_MENTIONS", 0),
        ("RELAYBRIDGE_PLAN", "enterprise"),
        ("RELAYBRIDGE_AUTH_STYLE", "cookie"),
        ("RELAYBRIDGE_AGENT_HOP_DEPTH", -1),
        ("RELAYBRIDGE_AGENT_HOP_LIMIT", -1),
        ("RELAYBRIDGE_AGENT_HOP_WINDOW", 0),
        ("RELAYBRIDGE_AGENT_HOP_WINDOW", "a while"),
        ("RELAYBRIDGE_MAX_CONCURRENT", 0),
        ("RELAYBRIDGE_EVENTS_PER_MINUTE", 0),
        ("RELAYBRIDGE_BUFFER_TTL", 0),
        ("RELAYBRIDGE_STALL_TIMEOUT", "soon"),
        ("RELAYBRIDGE_RESEND_GRACE", 0),
        ("RELAYBRIDGE_RESEND_LOST", -1),
        ("RELAYBRIDGE_RESEND_LOST", "twice"),
        ("RELAYBRIDGE_MAX_ANSWER_CHARS", 0),
        ("RELAYBRIDGE_MAX_ANSWER_SECONDS", 0),
        ("RELAYBRIDGE_MAX_ANSWER_SECONDS", "forever"),
        ("RELAYBRIDGE_AGENTS", ["athena", 3]),
    ],
)
def test_e006_invalid_values(settings: Any, name: str, value: Any) -> None:
    setattr(settings, name, value)
    assert "relaybridge.E006" in ids(checks.check_setting_values())


def test_check_ids_are_documented() -> None:
    doc = checks.__doc__ or ""
    for check_id in (
        "W001",
        "W002",
        "W003",
        "E001",
        "E002",
        "E003",
        "E004",
        "E005",
        "E006",
        "E007",
        "E008",
    ):
        assert f"relaybridge.{check_id}" in doc
