"""Every reason a notice can be skipped or fail is a code with words; nothing else is written.

The code base writes a skipped or failed notice's ``last_error`` only through
``reason_text(NoticeReason.X, ...)``: the source is read here and any string or
f-string written there directly fails the test, as does a code without words or a
template without a name people read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import casework
from casework.cases import words
from casework.notices import NoticeReason, reason_of, reason_text
from casework.notify.render import templates_available

SOURCE = Path(casework.__file__).parent
NOTICE_BUILDERS = {"notice_row", "outbox_row"}


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(SOURCE.rglob("*.py"))]


def _literal(node: ast.AST) -> bool:
    """A string typed in place (not a code): a non-empty constant or an f-string."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value != ""
    if isinstance(node, ast.IfExp):
        return _literal(node.body) or _literal(node.orelse)
    return isinstance(node, ast.JoinedStr)


def _writes(tree: ast.Module) -> list[tuple[int, ast.AST]]:
    """Every value the module writes into a notice's ``last_error``."""
    out: list[tuple[int, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            for kw in node.keywords:
                if kw.arg == "last_error" or (kw.arg == "reason" and name in NOTICE_BUILDERS):
                    out.append((node.lineno, kw.value))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "last_error":
                    out.append((node.lineno, value))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == "last_error":
                    out.append((node.lineno, node.value))
    return out


def test_every_reason_code_has_words_saying_not_sent_or_failed() -> None:
    assert set(words.NOTICE_REASON_WORDS) == set(NoticeReason)
    for reason, text in words.NOTICE_REASON_WORDS.items():
        assert text.startswith(("not sent: ", "failed: ")), reason
        assert "_" not in text, reason


def test_nothing_writes_a_notice_reason_except_through_a_code() -> None:
    typed = [
        f"{path.relative_to(SOURCE)}:{line}"
        for path, tree in _modules()
        for line, value in _writes(tree)
        if _literal(value)
    ]
    assert typed == []


def test_every_code_is_written_somewhere() -> None:
    used = {
        node.attr
        for path, tree in _modules()
        if path.name != "notices.py" and "cases/words.py" not in str(path)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "NoticeReason"
    }
    assert used == {r.name for r in NoticeReason}


@pytest.mark.parametrize("reason", list(NoticeReason))
def test_a_stored_reason_reads_back_as_its_words(reason: NoticeReason) -> None:
    stored = reason_text(reason, "the provider's own words: 21211")
    assert reason_of(stored) is reason
    status = "skipped" if words.NOTICE_REASON_WORDS[reason].startswith("not sent") else "failed"
    assert words.notice_reason_words(status, stored) == words.NOTICE_REASON_WORDS[reason]


def test_a_retry_note_is_not_read_as_a_reason() -> None:
    assert reason_of("temporary problem (503): try again") is None
    assert words.notice_reason_words("sent", reason_text(NoticeReason.stale)) == ""


def test_every_notice_template_has_a_name_people_read() -> None:
    assert {name for name, _ in templates_available()} <= set(words.TEMPLATE_WORDS)
