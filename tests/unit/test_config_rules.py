"""A bad reminder or notice rule stops casework when settings load, naming file and rule.

Each test writes a real config directory: the shipped ``defaults.toml`` and a service
file holding one mistake, the kind a commissioner's edit could make.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from casework.config import DEFAULT_CONFIG_DIR, ConfigError, ReminderRule, load_settings

GOOD_RULE = """
[[reminders.rules]]
id = "appeal-5d-family"
deadline = "appeal"
offset = -5
recipient = "family"
channels = ["sms", "email"]
template = "family_appeal_reminder"
"""


def config_dir(tmp_path: Path, service_text: str) -> Path:
    shutil.copy(DEFAULT_CONFIG_DIR / "defaults.toml", tmp_path / "defaults.toml")
    (tmp_path / "manchester.toml").write_text(service_text)
    return tmp_path


@pytest.fixture
def use_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    def install(service_text: str) -> Path:
        directory = config_dir(tmp_path, service_text)
        monkeypatch.setenv("CASEWORK_CONFIG_DIR", str(directory))
        monkeypatch.setenv("CASEWORK_SERVICE_FILE", "manchester.toml")
        return directory / "manchester.toml"

    return install


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (("offset = -5", 'offset = "five"'), ["offset", "valid integer"]),
        (('deadline = "appeal"', 'deadline = "apeal"'), ["deadline", "'appeal'"]),
        (('template = "family_appeal_reminder"', 'template = "family_apeal"'), ["family_apeal"]),
        (('channels = ["sms", "email"]', 'channels = ["fax"]'), ["channels", "'sms'"]),
        (('recipient = "family"', 'recipient = "child"'), ["recipient"]),
        (("offset = -5", "ofset = -5"), ["ofset", "offset"]),
        (('channels = ["sms", "email"]', "channels = []"), ["channels"]),
    ],
)
def test_a_bad_reminder_rule_is_refused_naming_the_file_and_the_rule(
    use_config, change: tuple[str, str], names: list[str]
) -> None:
    old, new = change
    path = use_config("[service]\nname = 'Test'\n" + GOOD_RULE.replace(old, new))
    with pytest.raises(ConfigError) as refused:
        load_settings(environment="test")
    message = str(refused.value)
    assert str(path) in message
    assert "[[reminders.rules]] number 1" in message
    if not new.startswith("ofset"):
        assert "'appeal-5d-family'" in message
    for name in names:
        assert name in message, message


def test_two_rules_with_one_id_are_refused(use_config) -> None:
    path = use_config(GOOD_RULE + GOOD_RULE)
    with pytest.raises(ConfigError, match="two reminder rules have the id 'appeal-5d-family'"):
        load_settings(environment="test")
    with pytest.raises(ConfigError, match=str(path)):
        load_settings(environment="test")


def test_a_bad_notice_rule_is_refused(use_config) -> None:
    path = use_config(
        '[[notices.events]]\nevent = "withdraw"\nrecipient = "family"\n'
        'channels = ["sms"]\ntemplate = "withdrawal_confirmd"\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_settings(environment="test")
    message = str(refused.value)
    assert str(path) in message
    assert "[[notices.events]] number 1 (event 'withdraw')" in message
    assert "no sms template named 'withdrawal_confirmd'" in message


def test_a_bad_reminder_setting_is_refused(use_config) -> None:
    path = use_config('[reminders]\ndefault_at = "nine"\n')
    with pytest.raises(ConfigError, match="default_at") as refused:
        load_settings(environment="test")
    assert str(path) in str(refused.value)


def test_a_good_service_file_loads_typed_rules(use_config) -> None:
    use_config(GOOD_RULE)
    settings = load_settings(environment="test")
    # A service file's rule list replaces the defaults' list.
    assert [r.id for r in settings.reminders.rules] == ["appeal-5d-family"]
    rule = settings.reminders.rules[0]
    assert isinstance(rule, ReminderRule)
    assert (rule.deadline, rule.offset, rule.channels) == ("appeal", -5, ["sms", "email"])


def test_the_shipped_configuration_loads() -> None:
    settings = load_settings(environment="test")
    assert len(settings.reminders.rules) > 20
    assert settings.notices.events


def test_links_point_at_the_served_port_unless_a_public_url_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from casework.config import load_settings

    monkeypatch.delenv("CASEWORK_PUBLIC_URL", raising=False)
    assert load_settings(environment="test").served_at("127.0.0.1", 8765).public_url == (
        "http://127.0.0.1:8765"
    )
    configured = load_settings(environment="test", public_url="https://cases.example.org")
    assert configured.served_at("0.0.0.0", 8765).public_url == "https://cases.example.org"
