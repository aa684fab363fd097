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


UK_COUNTRY_CODE = 44
# What every refused number is told to look like (the walk typed "call me").
PHONE_EXAMPLE = (
    "give a UK number such as 07700 900123 or 0161 209 8356, or an international number"
    " starting with +"
)
# The start of every "cannot text" warning: what the adviser can still do.
CANNOT_TEXT = "we can call or email this number but cannot text it"
# The national significant number (after 0 or +44) of a UK number of the right shape:
# a mobile (07 + 9 digits), a geographic number (01, 9 or 10 digits; 02, 10) or an
# 03 number (10 digits).
_UK_SHAPES = {"7": (10,), "1": (9, 10), "2": (10,), "3": (10,)}
_WRITTEN_INTERNATIONALLY = (
    phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN,
    phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD,
)


def normalise_phone(raw: str) -> str:
    """E.164 (``+447911123456``) from how people write UK numbers (``07911 123456``).

    A number written without ``+`` or ``00`` is read as a UK number. It is accepted
    when the phonenumbers library calls it valid, or when it has the length and shape
    of a UK number (see ``_UK_SHAPES``) even though the library does not: its metadata
    lags Ofcom's allocations (07700 900123 is refused by it), and refusing a family's
    real number loses their contact. So "202-555-0123" (an American way of writing)
    is refused, not read as a London number.

    A number written internationally (``+1 202 555 0123``, ``001 ...``) is accepted
    when the library calls it valid (a parent may live abroad, a service family), or,
    for +44, when it has a UK shape. Whether we can text it is :func:`can_text`.
    """
    text = raw.strip()
    if not text:
        raise ContactError("phone", "a contact telephone number is required")
    try:
        number = phonenumbers.parse(text, "GB", keep_raw_input=True)
    except phonenumbers.NumberParseException:
        raise ContactError("phone", f"{raw!r} is not a phone number: {PHONE_EXAMPLE}") from None
    international = number.country_code_source in _WRITTEN_INTERNATIONALLY
    if number.country_code != UK_COUNTRY_CODE:
        if not phonenumbers.is_valid_number(number):
            raise ContactError(
                "phone",
                f"{raw!r} is not a phone number in the country its code +{number.country_code}"
                f" stands for: check it with the family, or {PHONE_EXAMPLE}",
            )
    elif not _uk_number(number) or not (
        international
        # "44 7911 123456": the country code written without its +.
        or number.country_code_source
        == phonenumbers.CountryCodeSource.FROM_NUMBER_WITHOUT_PLUS_SIGN
        or phonenumbers.normalize_digits_only(text).startswith("0")
    ):
        raise ContactError("phone", f"{raw!r} is not a UK phone number: {PHONE_EXAMPLE}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _uk_number(number: phonenumbers.PhoneNumber) -> bool:
    if phonenumbers.is_valid_number(number):
        return True
    national = phonenumbers.national_significant_number(number)
    return phonenumbers.is_possible_number(number) and len(national) in _UK_SHAPES.get(
        national[:1], ()
    )


@lru_cache(maxsize=65536)
def can_text(e164: str) -> bool:
    """Whether an SMS goes to this number: the one place that decides it.

    Only a UK mobile: an 07 number of 10 digits after the 0, except 070 (personal
    numbers, which forward anywhere) and 076 (pagers), or one the library knows is a
    mobile (07624, the Isle of Man). Never a number abroad: our sender is a UK number,
    quiet hours are UK hours, and our Twilio account is not set up to text other
    countries (it would refuse, error 21408, after the notice was queued), so the
    adviser is told when the number is saved (:func:`cannot_text_warning`) and the
    family hears by email or post instead.

    Cached: the sweep asks for every family SMS, and parsing a number costs ~20 µs.
    """
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    if number.country_code != UK_COUNTRY_CODE:
        return False
    if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE:
        return True
    national = phonenumbers.national_significant_number(number)
    return len(national) == 10 and national[0] == "7" and national[1] not in "06"


def cannot_text_warning(e164: str) -> str:
    """Why the family's texts cannot reach this number, for the adviser saving it; ""
    when they can (or there is no number)."""
    if not e164 or can_text(e164):
        return ""
    if not e164.startswith(f"+{UK_COUNTRY_CODE}"):
        return f"{CANNOT_TEXT}, as we send text messages only to UK mobile numbers"
    return f"{CANNOT_TEXT}, as it is not a mobile number"


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
