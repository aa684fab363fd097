"""The data events take, in words, and the one place input is parsed and dates are checked.

Every door (CLI ``--set``, form fields, API JSON) hands raw values to
:func:`parse_event_data`; the same bounds, the same "not in the future" and the
same ordering checks apply whichever door a person used.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from casework import deadlines as dl
from casework.cases.errors import ValidationFailed, ValueMissing, ValuesUnknown
from casework.cases.words import CHOICE_WORDS

FieldType = Literal["date", "bool", "text", "choice", "time"]

# No SEND record predates the Children and Families Act 2014 coming into force.
EARLIEST_DATE = dt.date(2014, 9, 1)
# A meeting can be arranged ahead, but not years ahead.
FUTURE_LIMIT_DAYS = 2 * 366
MAX_TEXT = 10_000
MAX_SHORT_TEXT = 200


@dataclass(frozen=True, slots=True)
class EventField:
    """One piece of data an event takes; drives CLI parsing, web forms and the API schema.

    ``label`` is what a person reads ("The date the meeting was held"); ``name`` is
    only ever a key. ``default="today"`` means the London date of the moment the
    event is recorded. ``when`` says which side of today a date may fall:
    ``"past"`` (an act that happened: today or earlier), ``"future"`` (a meeting
    being arranged: today or later) or ``"any"`` (a timescale agreed in writing).
    ``not_before`` names case facts the date may not precede, each with how to say it.
    """

    name: str
    type: FieldType
    label: str
    help: str = ""
    required: bool = False
    default: str | None = None
    choices: tuple[str, ...] = ()
    when: Literal["past", "future", "any"] = "past"
    not_before: tuple[tuple[str, str], ...] = ()
    max_length: int = MAX_TEXT


NOTE = EventField("note", "text", "Note for the case record", "what was said or decided")


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off", ""):
        return False
    raise ValueError("answer yes or no")


def coerce(spec: EventField, value: Any) -> Any:
    """A raw value as the field's type, or a ValidationFailed in words."""
    try:
        if spec.type == "date":
            if isinstance(value, dt.datetime):
                return value.date()
            if isinstance(value, dt.date):
                return value
            return dt.date.fromisoformat(str(value).strip())
        if spec.type == "bool":
            return value if isinstance(value, bool) else _parse_bool(str(value))
        if spec.type == "choice":
            text = str(value).strip()
            if text not in spec.choices:
                words = "; ".join(CHOICE_WORDS.get(c, c).lower() for c in spec.choices)
                raise ValueError(f"choose one of: {words}")
            return text
        text = str(value).strip()
        if "\x00" in text:
            raise ValueError("it contains a character that cannot be stored")
        if spec.type == "time":
            if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", text):
                raise ValueError("give the time as hours and minutes, for example 10:00")
            return text
        if len(text) > spec.max_length:
            raise ValueError(f"it is too long: keep it under {spec.max_length:,} characters")
        return text
    except (ValueError, OverflowError) as exc:
        hint = "give a real date, for example 2027-03-31" if spec.type == "date" else str(exc)
        raise ValidationFailed(f"{spec.label}: {hint}.", field=spec.name) from exc


def check_date(spec: EventField, day: dt.date, today: dt.date) -> None:
    """Bounds and direction of a date; the one rule for every door."""
    latest = today + dt.timedelta(days=FUTURE_LIMIT_DAYS)
    if day < EARLIEST_DATE or day > latest:
        raise ValidationFailed(
            f"{spec.label} ({dl.fmt(day)}) cannot be right: give a date between"
            f" {dl.fmt(EARLIEST_DATE)} and {dl.fmt(latest)}.",
            field=spec.name,
        )
    if spec.when == "past" and day > today:
        raise ValidationFailed(
            f"{spec.label} ({dl.fmt(day)}) is after today ({dl.fmt(today)}): record it once it"
            " has happened, with the date it happened.",
            field=spec.name,
        )
    if spec.when == "future" and day < today:
        raise ValidationFailed(
            f"{spec.label} ({dl.fmt(day)}) has already passed: to record a meeting that took"
            ' place, use "Record meeting held".',
            field=spec.name,
        )


def check_order(spec: EventField, day: dt.date, facts: Mapping[str, dt.date | None]) -> None:
    """A step cannot be dated before the step it follows; name both dates."""
    for fact, words in spec.not_before:
        earlier = facts.get(fact)
        if earlier is not None and day < earlier:
            raise ValidationFailed(
                f"{spec.label} ({dl.fmt(day)}) is before {words} ({dl.fmt(earlier)}):"
                " check both dates.",
                field=spec.name,
            )


def parse_event_data(
    fields: tuple[EventField, ...],
    event_label: str,
    raw: Mapping[str, Any],
    *,
    today: dt.date,
    facts: Mapping[str, dt.date | None] | None = None,
) -> dict[str, Any]:
    """Typed, checked data for an event from strings or typed values.

    Unknown keys are refused (a typo must not be silently ignored on a legal
    record), dates default to ``today`` where the event says so, required fields
    are named in words.
    """
    by_name = {f.name: f for f in fields}
    unknown = sorted(set(raw) - set(by_name))
    if unknown:
        takes = "; ".join(f.label for f in fields) or "nothing"
        raise ValuesUnknown(
            f"{event_label} does not take {', '.join(unknown)}. It takes: {takes}.",
            field=unknown[0],
            takes=tuple((f.name, f.label) for f in fields),
        )
    parsed: dict[str, Any] = {}
    for name, spec in by_name.items():
        value = raw.get(name)
        if value is None or (isinstance(value, str) and value.strip() == ""):
            if spec.default == "today":
                parsed[name] = today
            elif spec.default is not None:
                parsed[name] = spec.default
            elif spec.required:
                raise ValueMissing(f"{spec.label}: this is needed.", field=name)
            else:
                continue
        else:
            parsed[name] = coerce(spec, value)
        if spec.type == "date":
            check_date(spec, parsed[name], today)
            check_order(spec, parsed[name], facts or {})
    return parsed
