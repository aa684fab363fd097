"""The calendar through the CLI with the service's closure days configured, and start-up
refusal of a bad rule.

config/manchester.toml's own example closes the service on Thu 24 Dec 2026. The law
does not stop for it: a decision sent Sat 24 Oct 2026 + 2 months is Thu 24 Dec 2026,
a working day outside the 25 Dec - 1 Jan window, so the appeal must reach the Tribunal
by 5pm that day (not Tue 29 Dec, where counting the closure day would push it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from casework.cli import app
from casework.config import DEFAULT_CONFIG_DIR, get_settings


def _service_config(tmp_path: Path, extra: str) -> Path:
    """A copy of the shipped config with manchester.toml's own closure-day example on."""
    directory = tmp_path / "config"
    directory.mkdir()
    shutil.copy(DEFAULT_CONFIG_DIR / "defaults.toml", directory / "defaults.toml")
    text = (DEFAULT_CONFIG_DIR / "manchester.toml").read_text()
    assert "closure_days = []" in text
    text = text.replace("closure_days = []", "closure_days = [2026-12-24]", 1)
    (directory / "manchester.toml").write_text(text + extra)
    return directory


@pytest.fixture
def closed_on_christmas_eve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = _service_config(tmp_path, "")
    monkeypatch.setenv("CASEWORK_CONFIG_DIR", str(directory))
    monkeypatch.setenv("CASEWORK_SERVICE_FILE", "manchester.toml")
    monkeypatch.setenv("CASEWORK_DATABASE_URL", f"sqlite:///{tmp_path}/unused.db")
    get_settings.cache_clear()
    yield directory
    get_settings.cache_clear()


def test_the_configured_closure_day_is_the_service_calendar(closed_on_christmas_eve: Path) -> None:
    settings = get_settings()
    assert settings.closure_days == [dt.date(2026, 12, 24)]
    assert settings.calendars.service.is_closure_day(settings.closure_days[0])


def test_appeal_deadline_on_the_services_closure_day(closed_on_christmas_eve: Path) -> None:
    result = CliRunner().invoke(app, ["calendar", "appeal-deadline", "--decision", "2026-10-24"])
    assert result.exit_code == 0, result.output
    first, explanation, _citation = result.stdout.strip().splitlines()
    assert first == "Thursday 24 December 2026, 5pm"
    assert explanation == (
        "decision sent 24 October 2026 + 2 months = 24 December 2026; "
        "appeal must reach the Tribunal by Thursday 24 December 2026, 5pm"
    )

    as_json = CliRunner().invoke(
        app, ["calendar", "appeal-deadline", "--decision", "2026-10-24", "--json"]
    )
    payload = json.loads(as_json.stdout)
    assert (payload["due_date"], payload["due_time"]) == ("2026-12-24", "17:00")
    assert payload["due_at"] == "2026-12-24T17:00:00+00:00"  # 5pm GMT


def test_working_days_are_statutory_whatever_the_office_does(
    closed_on_christmas_eve: Path,
) -> None:
    result = CliRunner().invoke(app, ["calendar", "working-days", "2026-12-23", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "Wednesday 23 December 2026 + 1 working days = Thursday 24 December 2026"
    )


def test_serve_refuses_to_start_with_a_bad_rule(tmp_path: Path) -> None:
    """A typo in a reminder rule stops `casework serve` at once, naming file and rule."""
    directory = _service_config(
        tmp_path,
        '\n[[reminders.rules]]\nid = "appeal-5d-family"\ndeadline = "appeal"\n'
        'offset = -5\nrecipient = "famly"\nchannels = ["email"]\n'
        'template = "family_appeal_reminder"\n',
    )
    env = {
        **os.environ,
        "CASEWORK_CONFIG_DIR": str(directory),
        "CASEWORK_SERVICE_FILE": "manchester.toml",
        "CASEWORK_ENVIRONMENT": "test",
        "CASEWORK_DATABASE_URL": f"sqlite:///{tmp_path}/never-created.db",
    }
    done = subprocess.run(
        [sys.executable, "-m", "casework.cli", "serve", "--port", "0", "--no-scheduler"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a server that started would hang here: that is the failure
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ")
    assert str(directory / "manchester.toml") in error
    assert "[[reminders.rules]] number 1 (id 'appeal-5d-family'): recipient" in error
    assert "casework is running" not in done.stdout
    assert not (tmp_path / "never-created.db").exists()
