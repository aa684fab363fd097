"""How a family's phone number is read, stored and texted (casework.contacts).

Found walking the product: "call me" came back in the phonenumbers library's words, a
real UK mobile (07700 900123) the library's metadata does not list yet was refused,
and a US number written the American way was read as a London one.
"""

from __future__ import annotations

import pytest

from casework.contacts import (
    CANNOT_TEXT,
    PHONE_EXAMPLE,
    ContactError,
    can_text,
    cannot_text_warning,
    normalise_phone,
)

# What the phonenumbers library says when it cannot parse (NumberParseException).
LIBRARY_WORDS = ("did not seem to be", "(1)", "(4)", "too long to be", "viable phone number")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("07911 123456", "+447911123456"),
        # A mobile range the library's metadata does not list yet: the right shape.
        ("07700 900123", "+447700900123"),
        ("+44 7700 900123", "+447700900123"),
        ("0044 7700 900123", "+447700900123"),
        ("44 7700 900123", "+447700900123"),
        ("0161 209 8356", "+441612098356"),
        ("(0161) 209 8356", "+441612098356"),
        ("01697 73456", "+44169773456"),
        ("020 7946 0000", "+442079460000"),
        ("0300 123 4567", "+443001234567"),
        # Written internationally: a parent abroad (a service family, say).
        ("+1 202 555 0123", "+12025550123"),
        ("001 202 555 0123", "+12025550123"),
        ("+33 6 12 34 56 78", "+33612345678"),
    ],
)
def test_numbers_people_give_are_kept_in_one_form(typed: str, stored: str) -> None:
    assert normalise_phone(typed) == stored


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("call me", "is not a phone number"),
        ("abc", "is not a phone number"),
        ("1" * 40, "is not a phone number"),
        # Without + or 00 a number is read as a UK number: this is an American one.
        ("202-555-0123", "is not a UK phone number"),
        ("7700 900123", "is not a UK phone number"),  # the leading 0 left off
        ("0161 12", "is not a UK phone number"),
        ("07700 90012", "is not a UK phone number"),  # a digit short
        ("077009001234", "is not a UK phone number"),  # a digit too many
        ("+1 555 0000", "is not a phone number in the country its code +1 stands for"),
    ],
)
def test_a_number_that_cannot_be_used_is_refused_in_our_words(typed: str, words: str) -> None:
    with pytest.raises(ContactError) as refused:
        normalise_phone(typed)
    message = refused.value.message
    assert refused.value.field == "phone"
    assert words in message
    assert PHONE_EXAMPLE in message
    assert "07700 900123 or 0161 209 8356, or an international number starting with +" in message
    assert not any(raw in message for raw in LIBRARY_WORDS), message


@pytest.mark.parametrize(
    ("e164", "texted"),
    [
        ("+447911123456", True),
        ("+447700900123", True),  # not in the library's metadata, still a mobile
        ("+447624123456", True),  # Isle of Man, a mobile the library knows
        ("+447000123456", False),  # 070: a personal number, forwarded anywhere
        ("+447600123456", False),  # 076: a pager
        ("+441612098356", False),  # a landline
        ("+448001234567", False),  # freephone
        ("+12025550123", False),  # abroad, even where the library cannot tell
        ("+33612345678", False),  # abroad, a French mobile
        ("", False),
    ],
)
def test_only_uk_mobiles_are_texted(e164: str, texted: bool) -> None:
    assert can_text(e164) is texted
    warning = cannot_text_warning(e164)
    if texted or not e164:
        assert warning == ""
    else:
        assert warning.startswith(CANNOT_TEXT)
        assert ("only to UK mobile numbers" in warning) is (not e164.startswith("+44"))
