"""config/law.toml: every clock cites its rule and where it was read; reg 44 limits are unique."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from casework.law import DEFAULT_PATH, LawDataError, load_law, parse_law

# The deadline kinds casework keeps for the mediation path, plus the agreement
# clocks' reg 42 paragraphs: each must have a citation.
REQUIRED_CLOCKS = (
    "contact_adviser",
    "certificate_after_decline",
    "icb_notified",
    "mediation_meeting",
    "mediation_meeting_health_only",
    "certificate_not_arranged",
    "certificate_after_meeting",
    "agreement_action",
    "icb_tells_la_of_agreement",
    "appeal",
)


def raw_law() -> dict[str, object]:
    with DEFAULT_PATH.open("rb") as fh:
        return tomllib.load(fh)


def test_every_clock_casework_keeps_has_a_citation_and_a_source() -> None:
    law = load_law()
    for key in REQUIRED_CLOCKS:
        entry = law.clock(key)
        assert entry.citation.strip(), key
        assert entry.source.startswith(("http://", "https://")), key
        assert entry.rule.strip(), key


def test_every_entry_in_the_file_has_a_citation_and_a_source() -> None:
    raw = raw_law()
    entries = [*raw["clock"], *raw["reg44"]]  # type: ignore[misc]
    assert len(entries) >= len(REQUIRED_CLOCKS)
    for entry in entries:
        assert isinstance(entry["citation"], str) and entry["citation"].strip(), entry["key"]
        assert isinstance(entry["source"], str) and entry["source"].startswith("http"), entry["key"]


def test_reg44_keys_are_unique_in_the_file() -> None:
    keys = [entry["key"] for entry in raw_law()["reg44"]]  # type: ignore[attr-defined]
    assert len(keys) == len(set(keys)), keys
    assert len(load_law().reg44) == len(keys)


def test_a_duplicate_reg44_key_is_refused() -> None:
    raw = raw_law()
    limits = raw["reg44"]
    doubled = {**raw, "reg44": [*limits, limits[0]]}  # type: ignore[index, misc]
    with pytest.raises(LawDataError, match="appears twice"):
        parse_law(doubled)


def test_an_entry_without_a_source_is_refused() -> None:
    raw = raw_law()
    first, *rest = raw["clock"]  # type: ignore[misc]
    without = {k: v for k, v in first.items() if k != "source"}
    with pytest.raises(LawDataError, match="source"):
        parse_law({**raw, "clock": [without, *rest]})


def test_a_citation_not_read_in_the_text_names_only_the_part() -> None:
    """Where the regulation number was not verified, the citation must not guess one."""
    for entry in load_law().clocks.values():
        if entry.checked == "part only":
            assert re.fullmatch(r"SEND Regulations 2014, Part \d", entry.citation), entry.key


def test_reg44_limits_named_in_domain_md_have_their_lengths() -> None:
    """domain.md's examples: notify 2 weeks, decide 10, final 14; draft 5, final 11."""
    law = load_law()
    assert law.limit("notify_will_assess").weeks == 2
    assert law.limit("decide_no_plan_after_assessment").weeks == 10
    assert law.limit("final_plan_after_assessment").weeks == 14
    assert law.limit("draft_plan").weeks == 5
    assert law.limit("final_plan").weeks == 11
    for limit in law.reg44.values():
        assert limit.citation.startswith("SEND Regulations 2014, reg 44(2)("), limit.key


def test_an_unknown_limit_is_named_in_the_error() -> None:
    with pytest.raises(LawDataError, match="no reg 44 limit 'nope'"):
        load_law().limit("nope")


def test_load_law_reads_another_file(tmp_path: Path) -> None:
    path = tmp_path / "law.toml"
    path.write_text(
        '[[clock]]\nkey = "appeal"\ncitation = "r.20"\nrule = "two months"\n'
        'source = "https://example.org/r20"\nchecked = "legislation text"\n'
    )
    law = load_law(path)
    assert law.clock("appeal").citation == "r.20"
    assert dict(law.reg44) == {}


def test_every_clock_cites_what_the_law_data_verified() -> None:
    """deadlines.py's citations are the ones config/law.toml traced to a source."""
    import datetime as dt

    from casework import deadlines as dl
    from casework.law import load_law

    law = load_law()
    day = dt.date(2027, 3, 1)
    clocks = {
        "contact_adviser": dl.contact_adviser_deadline(day),
        "certificate_after_decline": dl.certificate_after_decline(day),
        "icb_notified": dl.icb_notification_deadline(day),
        "mediation_meeting": dl.mediation_meeting_deadline(day),
        "mediation_meeting_health_only": dl.mediation_meeting_deadline(day, health_only=True),
        "certificate_not_arranged": dl.certificate_not_arranged(day),
        "certificate_after_meeting": dl.certificate_after_meeting(day),
        "agreement_action": dl.agreement_implementation(day),
        "icb_tells_la_of_agreement": dl.icb_tells_la_of_agreement(day),
        "appeal": dl.appeal_clock(day),
    }
    for key, clock in clocks.items():
        assert clock.citation == law.clock(key).citation, key
