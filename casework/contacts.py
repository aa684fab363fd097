"""Validating how we reach a family: a number an SMS can reach, an address mail can reach.

Intake is where a bad number must be caught: a typo found by Twilio weeks later,
on the appeal-deadline reminder, is a family that never hears.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email


class ContactError(ValueError):
    """A contact detail that cannot be used; ``field`` names it for the form or CLI."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def normalise_phone(raw: str, *, region: str = "GB") -> str:
    """E.164 (``+447911123456``) from how people write UK numbers (``07911 123456``)."""
    text = raw.strip()
    if not text:
        raise ContactError("phone", "a contact telephone number is required")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ContactError("phone", f"{raw!r} is not a telephone number ({exc})") from exc
    if not phonenumbers.is_valid_number(number):
        raise ContactError(
            "phone", f"{raw!r} is not a valid number; give a UK number such as 07911 123456"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=65536)
def is_mobile(e164: str) -> bool:
    """Only mobiles can take an SMS; a landline family gets email (or a call) instead.

    Cached: the sweep asks for every family SMS, and parsing a number costs ~20 µs.
    """
    number_type = phonenumbers.number_type(phonenumbers.parse(e164, None))
    return number_type in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def normalise_email(raw: str) -> str:
    """A syntactically valid address, normalised; no DNS lookups (no network here)."""
    text = raw.strip()
    if not text:
        return ""
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ContactError("email", f"{raw!r} is not a valid email address ({exc})") from exc


@lru_cache(maxsize=65536)
def display_phone(e164: str) -> str:
    """How a UK adviser reads a number back: ``07911 123456`` (kept: parsing a number
    cost a millisecond of every case page)."""
    if not e164:
        return ""
    number = phonenumbers.parse(e164, None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


# A UK postcode: outward code (area, district) and inward code (sector, unit).
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})$")
ADDRESS_LINE_MAX = 200


def normalise_postcode(raw: str) -> str:
    """``M2 5DB`` from ``m25db``: the form Royal Mail prints, or a ContactError."""
    text = re.sub(r"\s+", "", raw or "").upper()
    if not text:
        return ""
    match = _POSTCODE.match(text)
    if match is None:
        raise ContactError(
            "address_postcode", f"{raw!r} is not a UK postcode; give one such as M2 5DB"
        )
    return f"{match.group(1)} {match.group(2)}"


def check_postal_address(
    line_1: str, line_2: str, town: str, postcode: str, *, required: bool
) -> tuple[dict[str, str], dict[str, str]]:
    """(the address normalised, problems by field): lines trimmed, postcode in print form.

    ``required``: the family hears from us by post, so a letter must be deliverable:
    the first line, the town and the postcode are needed.
    """
    values = {
        "address_line_1": (line_1 or "").strip(),
        "address_line_2": (line_2 or "").strip(),
        "address_town": (town or "").strip(),
        "address_postcode": "",
    }
    problems: dict[str, str] = {}
    for name in ("address_line_1", "address_line_2", "address_town"):
        if len(values[name]) > ADDRESS_LINE_MAX or "\n" in values[name]:
            problems[name] = f"keep it to one line of {ADDRESS_LINE_MAX} characters or fewer"
    try:
        values["address_postcode"] = normalise_postcode(postcode)
    except ContactError as exc:
        problems["address_postcode"] = exc.message
    if required:
        for name in ("address_line_1", "address_town", "address_postcode"):
            if not values[name] and name not in problems:
                problems[name] = "this is needed for letters by post"
    return values, problems
