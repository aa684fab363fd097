"""One validated Settings object: ``CASEWORK_*`` environment variables over ``config/*.toml``.

Configuration is data a service owns (its contact points, its providers, its
reminder tables, its closure days), so it lives in TOML under ``config/`` where a
commissioner's change needs no code review. Secrets and deployment details come
from the environment. Settings are read once per process (:func:`get_settings`);
tests build their own with :func:`load_settings`.

Every part is typed and checked when it is loaded: a reminder rule with a typo
stops the program at start-up with a message naming the file and the rule,
rather than failing at the first sweep that meets it. Loading settings changes
nothing else in the process: the calendars are built from them on request
(:attr:`Settings.calendars`) and handed to whatever needs them.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from casework import deadlines as dl
from casework.deadlines import DeadlineKind
from casework.notify.render import TEMPLATE_DIR
from casework.states import CaseKind

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = PROJECT_ROOT / "config"
DEVELOPMENT_SECRET = "development-only-secret-change-me"

Recipient = Literal["family", "provider", "adviser", "manager"]
ChannelName = Literal["sms", "email"]


def _email_only() -> list[ChannelName]:
    return ["email"]


def _adviser_only() -> list[Literal["adviser", "manager"]]:
    return ["adviser"]


class ConfigError(ValueError):
    """Settings casework cannot run with, in words an operator can act on: the message
    names the file and entry, or the CASEWORK_ variable (no validation dump)."""


def _check_templates(template: str, channels: list[ChannelName]) -> None:
    missing = [c for c in channels if not (TEMPLATE_DIR / f"{template}.{c}.j2").is_file()]
    if missing:
        raise ValueError(f"there is no {' or '.join(missing)} template named {template!r}")


class EventNoticeRule(BaseModel):
    """A notice an event causes, from ``[[notices.events]]`` in config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: str = Field(min_length=1)
    recipient: Recipient
    channels: list[ChannelName] = Field(min_length=1)
    template: str
    case_kind: CaseKind | None = None
    # Only when the event did this too: "meeting_cancelled", a meeting still to happen
    # was called off by it (a family declining mediation while one is arranged), so
    # the rule sends the calendar's CANCEL and says nothing when there was no meeting.
    only_when: Literal["meeting_cancelled"] | None = None

    @model_validator(mode="after")
    def _templates_exist(self) -> EventNoticeRule:
        _check_templates(self.template, self.channels)
        return self


class ReminderRule(BaseModel):
    """A reminder or escalation around a deadline, from ``[[reminders.rules]]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    deadline: DeadlineKind
    offset: int
    unit: Literal["calendar", "working"] = "calendar"
    kind: Literal["reminder", "escalation"] = "reminder"
    recipient: Recipient
    channels: list[ChannelName] = Field(default_factory=_email_only, min_length=1)
    template: str
    at: dt.time | None = None

    @model_validator(mode="after")
    def _templates_exist(self) -> ReminderRule:
        _check_templates(self.template, self.channels)
        return self

    def fire_day(self, due: dt.date, service: dl.WorkingCalendar | None = None) -> dt.date:
        """The day this rule's notice goes out, counted on the service calendar.

        Working-day offsets count service days; a calendar-day offset that lands on a
        closure day goes out the service day before (nobody is in to act on it, and a
        legal clock due that day does not wait for the office to reopen), unless the
        rule is about a clock already missed: that one goes out the next service day.
        """
        calendar = service if service is not None else dl.service_calendar()
        if self.unit == "calendar" or self.offset == 0:
            day = due + dt.timedelta(days=self.offset)
        elif self.offset > 0:
            day = calendar.add_working_days(due, self.offset)
        else:
            day = calendar.subtract_working_days(due, -self.offset)
        return dl.send_day(day, calendar, after_due=self.offset > 0)

    def fire_at(
        self, due: dt.date, default_at: dt.time, service: dl.WorkingCalendar | None = None
    ) -> dt.datetime:
        """The moment (UTC) the notice goes out: its London time on :meth:`fire_day`."""
        local = dt.datetime.combine(
            self.fire_day(due, service), self.at or default_at, tzinfo=dl.LONDON
        )
        return local.astimezone(dt.UTC)


class ReminderSettings(BaseModel):
    """``[reminders]``: when reminders go out and every rule, checked at load."""

    model_config = ConfigDict(extra="forbid")

    stale_after_hours: float = Field(default=24, gt=0)
    default_at: dt.time = dt.time(9, 0)
    rules: list[ReminderRule] = Field(default_factory=list)
    # A legal clock due on one of the service's closure days: these staff are warned
    # on the service day before, whatever the clock's own rules say.
    closure_day_escalation: list[Literal["adviser", "manager"]] = Field(
        default_factory=_adviser_only
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> ReminderSettings:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                # The id is part of each notice's idempotency key: two rules with one
                # id would silently send only one of them.
                raise ValueError(f"two reminder rules have the id {rule.id!r}")
            seen.add(rule.id)
        return self


class NoticeSettings(BaseModel):
    """``[notices]``: the notices events cause."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventNoticeRule] = Field(default_factory=list)


class ReportSettings(BaseModel):
    """``[reports]``: who receives the commissioners' monthly report."""

    model_config = ConfigDict(extra="forbid")

    monthly_recipients: list[str] = Field(default_factory=list)


class ServiceContacts(BaseModel):
    """How families reach the IAS service; printed in every notice."""

    name: str = "IAS service"
    area: str = "England"
    helpline: str = ""
    email: str = ""
    website: str = ""
    # Where families are sent to appeal: the Tribunal's public guidance page.
    tribunal_guidance_url: str = "https://www.gov.uk/courts-tribunals/first-tier-tribunal-special-educational-needs-and-disability"
    # The local authority whose decisions the service's families appeal (printed on
    # certificates); empty for "The local authority for <area>".
    local_authority: str = ""
    # How letters name the health commissioner; empty for "the NHS Integrated Care Board".
    icb_name: str = ""
    # The service's postal address, printed at the top of every letter, one line each.
    postal_address: list[str] = Field(default_factory=list)


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


class RetentionSchedule(BaseModel):
    """How long each kind of record keeps its personal data (``[retention]`` in config).

    When a record passes its date the daily retention run (casework.cases.retention)
    replaces its personal data with a fixed marker; the facts, dates and clock outcomes
    the reports and the statutory SEN2 return count stay. The defaults and the reason
    for each are in config/defaults.toml.
    """

    model_config = ConfigDict(extra="forbid")

    case_years_after_closure: int = Field(default=6, ge=1)
    # Overrides by kind of case (mediation, disagreement) and, stronger, by how it ended
    # (an outcome such as appeal_lodged, or withdrawn for a withdrawn case).
    case_years_by_kind: dict[str, int] = Field(default_factory=dict)
    case_years_by_outcome: dict[str, int] = Field(default_factory=dict)
    notice_body_days: int = Field(default=365, ge=1)
    delivery_receipt_days: int = Field(default=183, ge=1)
    view_audit_years: int = Field(default=2, ge=1)
    session_days: int = Field(default=30, ge=1)
    api_token_use_days: int = Field(default=365, ge=1)
    # Notes, calls and agreed actions (a case's documents) are part of the case record.
    documents: Literal["follow_the_case"] = "follow_the_case"

    def case_years(self, kind: str, outcome: str | None) -> int:
        """Years after closure a case of this kind and outcome keeps its personal data."""
        if outcome and outcome in self.case_years_by_outcome:
            return self.case_years_by_outcome[outcome]
        return self.case_years_by_kind.get(kind, self.case_years_after_closure)


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
    # A closed or withdrawn case whose meeting its provider held stays in the provider's
    # lists this many days after it ended, then drops out (the provider's records are its
    # own; the IAS keeps the case). One whose allocation ended before a meeting goes at
    # once (casework.cases.provider_view.provider_may_open).
    provider_retention_days: int = Field(default=90, ge=0)
    team: Team = Field(default_factory=Team)
    allocation: AllocationRules = Field(default_factory=AllocationRules)
    reference_prefix_mediation: str = "MED"
    reference_prefix_disagreement: str = "DR"

    # Notices (delivery) - a channel whose keys are set is used for real, else the outbox.
    public_url: str = "http://127.0.0.1:8000"
    # Production with an http:// public URL is refused unless a proxy in front of
    # casework terminates TLS (and people reach it over https) and this says so.
    behind_tls_proxy: bool = False
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
    # A document (certificate, invitation, letter) larger than this is refused: they
    # are a few pages, so a bigger one is a bug, and it would swell every backup.
    document_max_bytes: int = Field(default=5_000_000, gt=0)
    reminders: ReminderSettings = Field(default_factory=ReminderSettings)
    notices: NoticeSettings = Field(default_factory=NoticeSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    quiet_hours_start: dt.time = dt.time(21, 0)
    quiet_hours_end: dt.time = dt.time(8, 0)
    # A clock is "due soon" (amber) within this many service days (pages and digest).
    due_soon_service_days: int = Field(default=3, ge=0)
    # The family's own page: its link stops working this many days after the case is
    # closed or withdrawn; a one-time code lasts family_code_minutes and allows
    # family_code_tries wrong answers, then the page waits family_code_wait_minutes.
    family_link_days_after_closure: int = Field(default=90, ge=0)
    family_code_minutes: int = Field(default=10, gt=0)
    family_code_tries: int = Field(default=5, gt=0)
    family_code_wait_minutes: int = Field(default=15, gt=0)
    # How long the family stays signed in to its page after entering a code.
    family_session_minutes: int = Field(default=60, gt=0)
    # The family page names the case's adviser and gives the service's phone and email;
    # the adviser's own address only when the service chooses to publish it.
    family_page_shows_adviser_email: bool = False
    # Texts carry the page's link too (a family with no email still finds its page); it
    # makes a family text two GSM-7 parts instead of one. False keeps texts to one part.
    family_link_in_sms: bool = True
    # Two-factor sign-in is always required of managers and administrators; these other
    # roles must enrol too (at their next sign-in, before reaching any page).
    mfa_also_required_for: list[Literal["adviser", "provider", "commissioner"]] = Field(
        default_factory=list
    )
    retention: RetentionSchedule = Field(default_factory=RetentionSchedule)

    @model_validator(mode="after")
    def _refuse_default_secret_outside_development(self) -> Settings:
        if self.environment == "production" and self.secret_key == DEVELOPMENT_SECRET:
            raise ValueError("CASEWORK_SECRET_KEY must be set to a long random value in production")
        return self

    @model_validator(mode="after")
    def _refuse_plain_http_in_production(self) -> Settings:
        if (
            self.environment == "production"
            and not self.public_url.lower().startswith("https://")
            and not self.behind_tls_proxy
        ):
            raise ValueError(
                f"CASEWORK_PUBLIC_URL is {self.public_url!r}, but production must be reached"
                " over https: set CASEWORK_PUBLIC_URL to the https:// address people use, or,"
                " if a proxy in front of casework terminates TLS, set"
                " CASEWORK_BEHIND_TLS_PROXY=true"
            )
        return self

    @property
    def tls_required(self) -> bool:
        """People reach the service over https: production always, elsewhere an https URL.

        Then cookies are Secure and browsers are told (HSTS) never to use plain http.
        Plain http stays usable for a local first run (browsers drop Secure cookies on
        http://127.0.0.1).
        """
        return self.environment == "production" or self.public_url.lower().startswith("https://")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'casework.db'}"

    def served_at(self, host: str, port: int) -> Settings:
        """These settings for a server listening on ``host:port``.

        Links in messages point at the public URL; unless one was configured
        (``CASEWORK_PUBLIC_URL``), that is the address being served.
        """
        if "public_url" in self.model_fields_set:
            return self
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return self.model_copy(update={"public_url": f"http://{shown}:{port}"})

    @property
    def calendars(self) -> dl.Calendars:
        """The statutory and service calendars for this service's closure days.

        Built once per distinct set of closure days (cached in ``deadlines``), so
        reading it on every request costs a dictionary lookup.
        """
        return dl.calendars(self.closure_days)

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

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        config_dir = Path(os.environ.get("CASEWORK_CONFIG_DIR", DEFAULT_CONFIG_DIR))
        service_file = os.environ.get("CASEWORK_SERVICE_FILE", "manchester.toml")
        data: dict[str, Any] = {}
        for path in (config_dir / "defaults.toml", config_dir / service_file):
            if path.exists():
                with path.open("rb") as fh:
                    try:
                        loaded = tomllib.load(fh)
                    except tomllib.TOMLDecodeError as exc:
                        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
                check_rule_sections(path, loaded)
                data = _deep_merge(data, loaded)
        return data


_SECTIONS: tuple[tuple[str, type[BaseModel], str, str], ...] = (
    ("reminders", ReminderSettings, "rules", "id"),
    ("notices", NoticeSettings, "events", "event"),
)


def check_rule_sections(path: Path, data: dict[str, Any]) -> None:
    """Refuse a file whose reminder or notice rules are wrong, naming the file and rule.

    Each file is checked on its own before merging, so the message can say which
    file holds the bad rule (a service file's rule list replaces the defaults').
    """
    for section, model, key, name_field in _SECTIONS:
        raw = data.get(section)
        if raw is None:
            continue
        try:
            model.model_validate(raw)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                loc = error["loc"]
                where = f"[{section}]"
                if len(loc) >= 2 and loc[0] == key and isinstance(loc[1], int):
                    entries = raw.get(key) if isinstance(raw, dict) else None
                    entry = entries[loc[1]] if isinstance(entries, list) else None
                    name = entry.get(name_field) if isinstance(entry, dict) else None
                    where = f"[[{section}.{key}]] number {loc[1] + 1}"
                    if name:
                        where += f" ({name_field} {name!r})"
                    loc = loc[2:]
                field = ".".join(str(part) for part in loc if part not in ("function-after",))
                message = str(error["msg"]).removeprefix("Value error, ")
                problems.append(f"{where}{': ' + field if field else ''}: {message}")
            raise ConfigError(f"{path}: " + "; ".join(problems)) from None


def load_settings(**overrides: Any) -> Settings:
    """Build settings afresh (tests, CLI with overrides); nothing else in the process changes.

    A wrong value is one plain line per problem (the CASEWORK_ variable or the TOML
    table), never a pydantic traceback.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_plain(exc)) from None


def _plain(exc: ValidationError) -> str:
    """One line per problem: the CASEWORK_ variable and what is wrong with it."""
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = [str(part) for part in error["loc"]]
        if not loc:
            lines.append(message)
        elif len(loc) == 1:
            lines.append(f"CASEWORK_{loc[0].upper()}: {message}")
        else:  # inside a table of the TOML configuration
            lines.append(f"{'.'.join(loc)}: {message}")
    return "; ".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
