"""``docs/state-machines.md`` is generated from the flows and must never go stale.

A reviewer reads the document, not ``states.py``; if a transition changes and the
document does not, the reviewer approves a process that is not the one running.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from casework import diagrams
from casework.cases.effects import EVENTS
from casework.states import FLOWS, CaseKind

EVENT_FIELDS = {key: spec.fields for key, spec in EVENTS.items()}


def test_the_committed_document_is_up_to_date() -> None:
    """Fails after any change to casework/states.py until `python -m casework.diagrams` is run."""
    assert diagrams.DOC_PATH.exists(), "run `python -m casework.diagrams` and commit the file"
    assert diagrams.DOC_PATH.read_text(encoding="utf-8") == diagrams.render()
    assert diagrams.main(["--check"]) == 0


def test_check_reports_a_stale_or_missing_file_and_writing_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "docs" / "state-machines.md"
    assert diagrams.main(["--check", "--output", str(target)]) == 1  # missing
    assert diagrams.main(["--output", str(target)]) == 0
    assert diagrams.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text(encoding="utf-8").replace("`decline`", "`refuse`"))
    assert diagrams.main(["--check", "--output", str(target)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_the_document_shows_every_transition_and_the_data_each_event_takes() -> None:
    """Each flow has a Mermaid block with every move, and a table row per event."""
    text = diagrams.render()
    assert text.count("```mermaid") == len(CaseKind)
    for kind, flow in FLOWS.items():
        section = diagrams.render_flow(kind)
        assert section in text
        for state in flow.states:  # type: ignore[attr-defined]
            for transition in state.transitions:
                move = f"    {transition.source.id} --> {transition.target.id} : "
                assert move in section, (kind, move)
                assert f"`{transition.source.id}` → `{transition.target.id}`" in section
        for event in flow.events:  # type: ignore[attr-defined]
            assert f"| `{event.id}` |" in section, (kind, event.id)
    for (kind, event), fields in EVENT_FIELDS.items():
        section = diagrams.render_flow(kind)
        row = next(line for line in section.splitlines() if line.startswith(f"| `{event}` |"))
        for spec in fields:
            described = re.search(rf"`{spec.name}` \({spec.type}[^;]*; ([^)]*)\): ", row)
            assert described, (kind, event, spec.name)
            if spec.required:
                assert described.group(1) == "required", (kind, event, spec.name)
            elif spec.default == "today":
                assert described.group(1) == "default today", (kind, event, spec.name)
            for choice in spec.choices:
                assert choice in row


def test_guards_are_shown_on_the_move_they_guard() -> None:
    """issue_certificate is guarded from mediating; declined needs no meeting; a second
    certificate (after a deemed one) is guarded by the meeting held after it."""
    section = diagrams.render_flow(CaseKind.mediation)
    row = next(line for line in section.splitlines() if line.startswith("| `issue_certificate` |"))
    moves, guards = row.split(" | ")[2:4]
    assert moves == (
        "`mediating` → `certificate_issued`<br>`declined` → `certificate_issued`"
        "<br>`certificate_issued` → `certificate_issued`<br>`appeal_ready` → `appeal_ready`"
    )
    assert guards == (
        "`meeting_recorded_or_not_arranged`<br>-<br>`second_certificate_due`"
        "<br>`second_certificate_due`"
    )
    assert "`unless not_arranged_already_reported`" in section
