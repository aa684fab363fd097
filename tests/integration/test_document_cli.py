"""The CLI doors to documents: list a case's, write one to a file (audited), reissue."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pypdf import PdfReader

from tests.integration.test_cli import Run, as_json, cli, open_case

__all__ = ["cli"]  # the fixture, used by name below


def certified(cli: Run) -> str:
    reference = open_case(cli)
    cli("case", "advance", reference, "advise", "--at", "2026-11-10T10:00")
    cli("case", "advance", reference, "decline", "--at", "2026-11-11T10:00")
    cli("case", "advance", reference, "issue_certificate", "--at", "2026-11-13T10:00")
    return reference


def test_list_get_and_reissue_a_certificate(cli: Run, tmp_path: Path) -> None:
    reference = certified(cli)
    [doc] = as_json(cli("case", "documents", reference, "--json"))
    assert doc["kind"] == "certificate_declined" and doc["version"] == 1
    assert doc["certificate_number"].startswith("MC-2026-") and doc["current"] is True
    assert len(doc["sha256"]) == 64 and doc["created"].startswith("2026-11-13")
    words = cli("case", "documents", reference).stdout
    assert "Mediation certificate: the family decided not to pursue mediation" in words
    assert "certificate_declined" not in words and doc["sha256"] in words

    out = tmp_path / "certificate.pdf"
    got = as_json(cli("document", "get", str(doc["id"]), "--out", str(out), "--json"))
    assert got["sha256"] == doc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    text = " ".join(PdfReader(out).pages[0].extract_text().split())
    assert f"Certificate number {doc['certificate_number']}" in text
    history = as_json(cli("case", "show", reference, "--json"))
    trail = [e for e in history["events"] if e["event"] == "download_document"]
    assert trail and trail[-1]["data"]["document_id"] == doc["id"]

    refused = cli("case", "reissue-certificate", reference, doc["certificate_number"], expect=2)
    assert "Say what was corrected" in refused.stderr
    cli(
        "case", "reissue-certificate", reference, doc["certificate_number"],
        "--reason", "typing mistake", "--at", "2026-11-14T10:00",
    )  # fmt: skip
    new, old = as_json(cli("case", "documents", reference, "--json"))
    assert (new["version"], new["current"], old["current"]) == (2, True, False)
    assert new["certificate_number"] == old["certificate_number"]
    assert "replaced by a correction" in cli("case", "documents", reference).stdout


def test_missing_documents_and_cases_say_so(cli: Run, tmp_path: Path) -> None:
    missing = cli("document", "get", "999999", "--out", str(tmp_path / "x.pdf"), expect=3)
    assert "There is no document number 999999" in missing.stderr
    assert not (tmp_path / "x.pdf").exists()
    assert "no case" in cli("case", "documents", "MED-2026-9999", expect=3).stderr.lower()
    reference = open_case(cli)
    assert "has no documents yet" in cli("case", "documents", reference).stdout
    folder = cli("document", "get", "1", "--out", str(tmp_path), expect=2)
    assert "is a folder" in folder.stderr
