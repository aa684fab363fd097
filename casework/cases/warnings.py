"""What the law makes uncertain or late on a case, in words: one rule for pages and letters.

Each function reads only the case's facts and a day, so the case page, the API, the
CLI and the letters to the family say the same thing from the same rule.
"""

from __future__ import annotations

import datetime as dt

from casework import deadlines as dl
from casework.models import Case
from casework.states import CaseKind


def contact_window_end(case: Case) -> dt.date | None:
    """The last day of the family's 2 months to contact the adviser (reg 33), if it applies."""
    if case.kind != CaseKind.mediation or case.placement_only or case.decision_date is None:
        return None
    return dl.add_months(case.decision_date, 2)


def late_contact(case: Case, today: dt.date) -> str | None:
    """The 2-month limit has passed before the family told us its choice.

    The family is still advised and still gets a certificate if it asks, but must be
    told the appeal may be late and that the Tribunal decides whether to accept it.
    """
    end = contact_window_end(case)
    if end is None:
        return None
    told = case.chose_on or case.declined_on
    if (told or today) <= end:
        return None
    return (
        f"The 2-month limit to contact the mediation adviser passed on {dl.fmt(end)}. The"
        " family can still be advised and get a certificate, but its appeal may be late:"
        " the Tribunal decides whether to accept a late appeal."
    )


def reg32_missing(case: Case) -> str | None:
    """The LA's decision letter did not give what reg 32 requires."""
    if case.kind != CaseKind.mediation or case.reg32_info_given is not False:
        return None
    return (
        "The LA's decision letter did not give the information the law requires about"
        " mediation and the right to appeal: the Tribunal may extend the time to appeal for"
        " that reason."
    )


def second_certificate(case: Case) -> str | None:
    """A meeting after a deemed certificate: which certificate counts is not settled."""
    if case.certificate_type != "not_arranged" or case.meeting_held_on is None:
        return None
    first = case.certificate_on
    due = case.appeal_due
    shown = f" ({dl.fmt(due)}, 5pm)" if due else ""
    issued = f" on {dl.fmt(case.second_certificate_on)}" if case.second_certificate_on else ""
    return (
        f"A meeting was held after the certificate of {dl.fmt(first) if first else 'the'}"
        f" (the meeting could not be arranged in 30 days). The mediator's certificate{issued}"
        f" may give a later appeal date, which only the Tribunal can confirm; the appeal"
        f" deadline shown{shown} is the one that certainly holds."
    )


def waiting_for_icb(case: Case) -> str | None:
    """Health-only mediation: the 30 days run from the day the ICB was told."""
    if not case.health_only or case.icb_told_on is not None or case.la_told_on is None:
        return None
    return (
        "Only health care is in issue, so the ICB must arrange the meeting within 30 days of"
        " the day it was told. That day is not recorded yet: record it as soon as it is"
        " known; the LA must tell the ICB within 3 working days."
    )


def all_warnings(case: Case, today: dt.date) -> list[str]:
    found = (
        late_contact(case, today),
        reg32_missing(case),
        waiting_for_icb(case),
        second_certificate(case),
    )
    return [w for w in found if w]
