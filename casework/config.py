"""One validated Settings object: ``CASEWORK_*`` environment variables over ``config/*.toml``.

Configuration is data a service owns (its contact points, its providers, its
reminder tables, its closure days), so it lives in TOML under ``config/`` where a
commissioner's change needs no code review. Secrets and deployment details come
from the environment. Settings are read once per process (:func:`get_settings`);
tests build their own with :func:`load_settings`.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = PROJECT_ROOT / "config"
DEVELOPMENT_SECRET = "development-only-secret-change-me"


class ServiceContacts(BaseModel):
    """How families reach the IAS service; printed in every notice."""

    name: str = "IAS service"
    area: str = "England"
    helpline: str = ""
    email: str = ""
    website: str = ""


class ProviderConfig(BaseModel):
    """A commissioned mediation / disagreement-resolution provider."""

    code: str
    name: str
    email: str
    phone: str = ""


class DisagreementTargets(BaseModel):
    """Service targets for disagreement resolution, which has no statutory clock."""

    advice_working_days: int = 5
    allocation_working_days: int = 5
    meeting_working_days: int = 20


class Team(BaseModel):
    """Where adviser and manager notices go until individual sign-in exists."""

    adviser_email: str = "advisers@example.org"
    manager_email: str = "manager@example.org"
    adviser_phone: str = ""


class AllocationRules(BaseModel):
    """How a provider is suggested for a case (``[allocation]`` in config).

    Commissioners change these (a provider's capacity, a newly declared conflict of
    interest) without a code change, so they are data. Keys are provider codes.
    """

    # Relative capacity: 2.0 carries twice the open cases of 1.0 before it stops being
    # the lightest loaded; 0 takes no new cases (it is excluded from suggestions).
    capacity: dict[str, float] = Field(default_factory=dict)
    default_capacity: float = Field(default=1.0, gt=0)
    # Declared conflicts of interest: free-text keys (a school, an LA team) that,
    # found in a case's summary, exclude that provider from the suggestion.
    conflicts: dict[str, list[str]] = Field(default_factory=dict)


class Settings(BaseSettings):
    """Everything configurable. Env vars win over TOML, TOML over these defaults."""

    model_config = SettingsConfigDict(env_prefix="CASEWORK_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    secret_key: str = DEVELOPMENT_SECRET
    config_dir: Path = DEFAULT_CONFIG_DIR
    service_file: str = "manchester.toml"
    data_dir: Path = PROJECT_ROOT / "var"
    database_url: str = ""
    sql_echo: bool = False

    service: ServiceContacts = Field(default_factory=ServiceContacts)
    providers: list[ProviderConfig] = Field(default_factory=list)
    closure_days: list[dt.date] = Field(default_factory=list)
    disagreement_targets: DisagreementTargets = Field(default_factory=DisagreementTargets)
    allocation_acceptance_working_days: int = 2
    team: Team = Field(default_factory=Team)
    allocation: AllocationRules = Field(default_factory=AllocationRules)
    reference_prefix_mediation: str = "MED"
    reference_prefix_disagreement: str = "DR"

    # Notices (delivery) - a channel whose keys are set is used for real, else the outbox.
    public_url: str = "http://127.0.0.1:8000"
    sendgrid_api_key: str = ""
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_from: str = "noreply@example.org"
    sendgrid_webhook_public_key: str = ""
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""
    twilio_messaging_service_sid: str = ""
    twilio_base_url: str = ""
    provider_timeout_seconds: float = 10.0
    dispatch_concurrency: int = 4  # sender threads per worker (overlap provider latency)
    # A claim on a notice lasts this long unless the live worker's heartbeat renews it,
    # so a dead worker's notices go to another worker within lease + one dispatch tick.
    dispatch_lease_seconds: float = Field(default=20.0, gt=0, le=30)
    dispatch_heartbeat_seconds: float = Field(default=5.0, gt=0)
    # Webhook bodies above these sizes are refused (413) before they are read.
    webhook_max_bytes_twilio: int = Field(default=1_000_000, gt=0)
    webhook_max_bytes_sendgrid: int = Field(default=10_000_000, gt=0)
    reminders: dict[str, Any] = Field(default_factory=dict)
    notices: dict[str, Any] = Field(default_factory=dict)
    quiet_hours_start: dt.time = dt.time(21, 0)
    quiet_hours_end: dt.time = dt.time(8, 0)
    default_send_time: dt.time = dt.time(9, 0)

    @model_validator(mode="after")
    def _refuse_default_secret_outside_development(self) -> Settings:
        if self.environment == "production" and self.secret_key == DEVELOPMENT_SECRET:
            raise ValueError("CASEWORK_SECRET_KEY must be set to a long random value in production")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'casework.db'}"

    def provider(self, name_or_code: str) -> ProviderConfig:
        wanted = name_or_code.strip().casefold()
        for p in self.providers:
            if wanted in (p.code.casefold(), p.name.casefold()):
                return p
        known = ", ".join(f"{p.code} ({p.name})" for p in self.providers)
        raise KeyError(f"unknown provider {name_or_code!r}; known: {known}")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlFilesSource(settings_cls))


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class TomlFilesSource(PydanticBaseSettingsSource):
    """``config/defaults.toml`` then the service file (e.g. ``manchester.toml``), deep-merged."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        config_dir = Path(os.environ.get("CASEWORK_CONFIG_DIR", DEFAULT_CONFIG_DIR))
        service_file = os.environ.get("CASEWORK_SERVICE_FILE", "manchester.toml")
        data: dict[str, Any] = {}
        for path in (config_dir / "defaults.toml", config_dir / service_file):
            if path.exists():
                with path.open("rb") as fh:
                    data = _deep_merge(data, tomllib.load(fh))
        return data


def load_settings(**overrides: Any) -> Settings:
    """Build settings afresh (tests, CLI with overrides) and install the closure days."""
    from casework import deadlines

    settings = Settings(**overrides)
    deadlines.set_closure_days(settings.closure_days)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
