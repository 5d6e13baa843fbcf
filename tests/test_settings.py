from pathlib import Path

import pytest

from streams.settings import Settings


def test_defaults_work_out_of_the_box(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOYALTY_BOOTSTRAP_SERVERS", "LOYALTY_PARTITIONS", "SCHEMA_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.load()
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.partitions == 8
    assert settings.schema_registry_url is None
    assert settings.rules.name == "loyalty-program.toml"


def test_environment_then_flags_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOYALTY_BOOTSTRAP_SERVERS", "10.0.0.1:9093")
    monkeypatch.setenv("LOYALTY_PARTITIONS", "3")
    monkeypatch.setenv("LOYALTY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://registry:8081")
    from_env = Settings.load()
    assert from_env.bootstrap_servers == "10.0.0.1:9093"
    assert from_env.partitions == 3
    assert from_env.data_dir == tmp_path
    assert from_env.schema_registry_url == "http://registry:8081"
    flagged = Settings.load(partitions=12, bootstrap_servers=None)
    assert flagged.partitions == 12
    assert flagged.bootstrap_servers == "10.0.0.1:9093"


def test_bad_values_are_rejected_with_the_field_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_PARTITIONS", "0")
    with pytest.raises(ValueError, match="partitions"):
        Settings.load()


def test_the_limit_on_event_times_ahead_of_receipt_is_a_day_and_zero_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOYALTY_MAX_EVENT_TIME_AHEAD_SECONDS", raising=False)
    assert Settings.load().max_event_time_ahead_ms == 86_400_000
    monkeypatch.setenv("LOYALTY_MAX_EVENT_TIME_AHEAD_SECONDS", "90.5")
    assert Settings.load().max_event_time_ahead_ms == 90_500
    monkeypatch.setenv("LOYALTY_MAX_EVENT_TIME_AHEAD_SECONDS", "0")
    assert Settings.load().max_event_time_ahead_ms is None
    for wrong in ("-1", "inf"):
        monkeypatch.setenv("LOYALTY_MAX_EVENT_TIME_AHEAD_SECONDS", wrong)
        with pytest.raises(ValueError, match="max_event_time_ahead_seconds"):
            Settings.load()
