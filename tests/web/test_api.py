"""The REST API over HTTP, on SQLite and PostgreSQL: every route, every error shape, and
the provider-isolation matrix (each role's token against each case, by every route).

The cast: an adviser, a manager and an admin (who see everything), and staff of two
providers, KIDS and Link (who see only the cases allocated to their provider). Cases:
one allocated to KIDS, one to Link, one not yet allocated. The clock is pinned.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from casework import auth, cases
from casework.config import Settings
from casework.db import session_scope
from casework.models import Case, CaseEvent, Notice, NoticeStatus
from casework.states import CaseKind, all_events
from casework.web import assets
from casework.web.api.schemas import EVENT_NAMES
from casework.web.app import create_app
from tests.conftest import ADVISER, at
from tests.factories import allocate_to, create_case

NOW = at("2026-11-10")
ROLES = ("adviser", "manager", "admin", "kids", "link")
STAFF = ("adviser", "manager", "admin")


@dataclass
class World:
    client: TestClient
    engine: Engine
    settings: Settings
    tokens: dict[str, str]
    refs: dict[str, str]  # "kids" / "link" / "none" -> case reference

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, role: str, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.headers(role), **kw)

    def post(self, role: str, url: str, body: dict[str, Any]) -> Any:
        return self.client.post(url, headers=self.headers(role), json=body)


@pytest.fixture
def world(engine: Engine, session: Session, settings: Settings) -> Iterator[World]:
    tokens: dict[str, str] = {}
    for role in ROLES:
        provider = role if role in ("kids", "link") else None
        user = auth.create_user(
            session,
            email=f"{role}@example.org",
            role="provider" if provider else role,
            provider=provider,
            now=NOW,
        )
        tokens[role] = auth.create_api_token(session, user, name="tests", now=NOW)
    refs = {}
    for code in ("kids", "link"):
        case = create_case(session, settings, name=f"{code.title()} Family")
        allocate_to(session, case.reference, code, now=NOW, actor=ADVISER, settings=settings)
        refs[code] = case.reference
    refs["none"] = create_case(session, settings, name="Unallocated Family").reference
    app = create_app(settings, engine)
    app.state.clock = lambda: NOW
    with TestClient(app) as client:
        yield World(client, engine, settings, tokens, refs)


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "field", "allowed"}, body
    assert body["error"]
    return typing.cast(dict[str, Any], body)


# --- Authentication and the document ------------------------------------------------------


def test_no_token_is_401_with_how_to_get_one(world: World) -> None:
    response = world.client.get("/api/v1/cases")
    body = _error(response, 401)
    assert "Authorization: Bearer" in body["error"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer cw_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer"])
def test_a_bad_token_is_401(world: World, header: str) -> None:
    response = world.client.get("/api/v1/deadlines", headers={"Authorization": header})
    _error(response, 401)


def test_a_revoked_token_is_401(world: World) -> None:
    from casework.models import ApiToken

    with session_scope(world.engine) as s:
        for row in s.execute(select(ApiToken)).scalars():
            row.revoked_at = NOW
        s.commit()
    body = _error(world.get("adviser", "/api/v1/cases"), 401)
    assert "revoked" in body["error"]


def test_openapi_document_describes_every_route(world: World) -> None:
    doc = world.client.get("/api/v1/openapi.json").json()
    paths = doc["paths"]
    assert set(paths) >= {
        "/api/v1/cases",
        "/api/v1/cases/{reference}",
        "/api/v1/cases/{reference}/events",
        "/api/v1/cases/{reference}/allocation",
        "/api/v1/cases/{reference}/allocation/suggestion",
        "/api/v1/cases/{reference}/allocation/response",
        "/api/v1/deadlines",
        "/api/v1/notices",
    }
    assert doc["components"]["securitySchemes"]["ApiToken"]["scheme"] == "bearer"
    post_event = paths["/api/v1/cases/{reference}/events"]["post"]
    assert post_event["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    assert post_event["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    event_enum = doc["components"]["schemas"]["EventIn"]["properties"]["event"]["enum"]
    assert "issue_certificate" in event_enum


def test_the_event_names_in_the_schema_are_exactly_the_flows_events() -> None:
    known = set(all_events(CaseKind.mediation)) | set(all_events(CaseKind.disagreement))
    assert set(EVENT_NAMES) == known


# --- Cases ------------------------------------------------------------------------------


def test_list_cases_newest_first_with_paging(world: World) -> None:
    response = world.get("adviser", "/api/v1/cases", params={"limit": 2})
    assert response.status_code == 200
    page = response.json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 0
    assert [c["reference"] for c in page["items"]] == [world.refs["none"], world.refs["link"]]
    second = world.get("adviser", "/api/v1/cases", params={"limit": 2, "offset": 2}).json()
    assert [c["reference"] for c in second["items"]] == [world.refs["kids"]]
    kids = second["items"][0]
    assert kids["provider"] == {"code": "kids", "name": "KIDS"}
    assert kids["next_deadline"]["kind"] == "allocation_acceptance"
    assert kids["next_deadline"]["explanation"]


def test_list_cases_filters(world: World) -> None:
    advance_via_api(world, world.refs["none"], "advise")
    advised = world.get("adviser", "/api/v1/cases", params={"state": "advised"}).json()
    assert [c["reference"] for c in advised["items"]] == [world.refs["none"]]
    by_name = world.get("adviser", "/api/v1/cases", params={"q": "link fam"}).json()
    assert [c["reference"] for c in by_name["items"]] == [world.refs["link"]]
    by_ref = world.get("adviser", "/api/v1/cases", params={"q": world.refs["kids"].lower()}).json()
    assert [c["reference"] for c in by_ref["items"]] == [world.refs["kids"]]
    dr = world.get("adviser", "/api/v1/cases", params={"kind": "disagreement"}).json()
    assert dr["total"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [({"state": "sleeping"}, "state"), ({"limit": 0}, "limit"), ({"offset": -1}, "offset")],
)
def test_list_cases_bad_query_is_422_naming_the_field(
    world: World, params: dict[str, Any], field: str
) -> None:
    body = _error(world.get("adviser", "/api/v1/cases", params=params), 422)
    assert body["field"] == field
    assert body["error"].startswith(f"{field}: ")
    assert body["errors"][0]["field"] == field


INTAKE = {
    "kind": "mediation",
    "name": "Sam Parent",
    "phone": "07911 123456",
    "channel": "email",
    "email": "sam.parent@example.org",
    "decision_date": "2026-11-03",
    "decision_type": "refuse_plan",
    "summary": "LA refused to draw up an EHC plan",
}


def test_create_case(world: World) -> None:
    response = world.post("adviser", "/api/v1/cases", INTAKE)
    assert response.status_code == 201, response.text
    case = response.json()
    assert case["reference"].startswith("MED-2026-")
    assert response.headers["Location"] == f"/api/v1/cases/{case['reference']}"
    assert case["state"] == "requested" and case["version"] == 1
    assert case["contact"] == {
        "name": "Sam Parent",
        "phone": "+447911123456",
        "email": "sam.parent@example.org",
        "preferred_channels": ["sms", "email"],
    }
    (clock,) = case["deadlines"]
    assert clock["kind"] == "contact_adviser" and clock["status"] == "open"
    assert "2 months" in clock["explanation"] or "month" in clock["explanation"]
    assert clock["days_left"] == (dt.date.fromisoformat(clock["due_date"]) - NOW.date()).days
    (opened,) = case["events"]
    assert opened["event"] == "open" and opened["actor"] == "user:adviser@example.org"
    assert {e["event"] for e in case["allowed_events"]} >= {"advise", "withdraw"}
    withdraw = next(e for e in case["allowed_events"] if e["event"] == "withdraw")
    assert withdraw["fields"][0]["name"] == "reason" and withdraw["fields"][0]["required"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"phone": ""}, "phone", "ring back"),
        ({"phone": "12"}, "phone", "not a"),
        ({"email": "not-an-address"}, "email", "not a valid email"),
        ({"kind": "arbitration"}, "kind", "kind: "),
        ({"decision_date": "2099-01-01"}, "decision_date", "cannot be right"),
        ({"decision_date": "2026-12-01"}, "decision_date", "is after today"),
        ({"decision_date": "2001-01-01"}, "decision_date", "Monday 1 September 2014"),
        ({"surprise": 1}, "surprise", "surprise: "),
        ({"name": "x" * 201}, "name", "name: "),
        ({"summary": "nul \x00 byte"}, "summary", "NUL"),
    ],
)
def test_create_case_validation_names_the_field(
    world: World, change: dict[str, Any], field: str, words: str
) -> None:
    body = _error(world.post("adviser", "/api/v1/cases", {**INTAKE, **change}), 422)
    assert body["field"] == field
    assert words in body["error"]


def test_read_case_is_recorded_in_the_audit_trail(world: World) -> None:
    ref = world.refs["kids"]
    first = world.get("manager", f"/api/v1/cases/{ref}")
    assert first.status_code == 200
    detail = first.json()
    assert detail["allocation"]["provider"]["code"] == "kids"
    assert detail["allocation"]["status"] == "offered"
    assert [e["event"] for e in detail["events"]] == ["open", "allocate_provider"]
    with session_scope(world.engine) as s:
        case = cases.get_case(s, ref)
        views = [e for e in cases.case_events(s, case, include_views=True) if e.event == "viewed"]
        assert [(v.actor, v.channel) for v in views] == [("user:manager@example.org", "api")]
        assert case.version == detail["version"]  # a view does not change the case
    again = world.get("manager", f"/api/v1/cases/{ref}", params={"include_views": True}).json()
    assert [e["event"] for e in again["events"]][-1] == "viewed"


def test_listing_cases_reads_while_another_writer_holds_the_lock(world: World) -> None:
    """A read-only GET does not queue for SQLite's write lock (it begins as a reader)."""
    if world.engine.dialect.name != "sqlite":
        pytest.skip("one writer at a time is SQLite's lock; PostgreSQL locks rows")
    with world.engine.connect().execution_options(claim=True) as other:
        other.execute(select(Case.id)).all()  # BEGIN IMMEDIATE: another writer holds it
        listed = world.get("manager", "/api/v1/cases")
        other.rollback()
    assert listed.status_code == 200
    assert listed.json()["total"] == 3


def test_unknown_case_is_404_with_what_to_do(world: World) -> None:
    body = _error(world.get("adviser", "/api/v1/cases/MED-2026-9999"), 404)
    assert "GET /api/v1/cases" in body["error"]


# --- Events ------------------------------------------------------------------------------


def advance_via_api(
    world: World, ref: str, event: str, role: str = "adviser", **data: Any
) -> dict[str, Any]:
    response = world.post(role, f"/api/v1/cases/{ref}/events", {"event": event, "data": data})
    assert response.status_code == 200, response.text
    return typing.cast(dict[str, Any], response.json())


def test_post_event_moves_the_case(world: World) -> None:
    ref = world.refs["kids"]
    before = world.get("adviser", f"/api/v1/cases/{ref}").json()
    response = world.post(
        "adviser",
        f"/api/v1/cases/{ref}/events",
        {
            "event": "advise",
            "note": "talked options through",
            "expected_version": before["version"],
        },
    )
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["state"] == "advised" and after["version"] == before["version"] + 1
    advise = after["events"][-1]
    assert (advise["event"], advise["channel"], advise["note"]) == (
        "advise",
        "api",
        "talked options through",
    )
    chosen = advance_via_api(world, ref, "choose_mediation", la_told_on="2026-11-10")
    assert chosen["state"] == "mediating"
    assert any(d["kind"] == "mediation_meeting" for d in chosen["deadlines"])


def test_a_refused_transition_is_409_listing_what_is_allowed(world: World) -> None:
    ref = world.refs["none"]
    body = _error(
        world.post("adviser", f"/api/v1/cases/{ref}/events", {"event": "issue_certificate"}), 409
    )
    assert body["error"].startswith(
        "Cannot record “Issue certificate”: the case is Requested. Possible now:"
    )
    assert set(body["allowed"]) == {"advise", "mark_exempt", "withdraw"}


def test_a_guard_refusal_says_what_is_missing(world: World) -> None:
    ref = world.refs["none"]
    advance_via_api(world, ref, "advise")
    body = _error(
        world.post("adviser", f"/api/v1/cases/{ref}/events", {"event": "choose_mediation"}), 409
    )
    assert "allocate a provider first" in body["error"]


def test_a_stale_expected_version_is_409(world: World) -> None:
    ref = world.refs["kids"]
    seen = world.get("adviser", f"/api/v1/cases/{ref}").json()["version"]
    advance_via_api(world, ref, "advise", role="manager")  # someone else moves it first
    body = _error(
        world.post(
            "adviser",
            f"/api/v1/cases/{ref}/events",
            {"event": "decline", "expected_version": seen},
        ),
        409,
    )
    assert "changed by someone else" in body["error"]
    assert f"expected_version={seen + 1}" in body["error"]
    assert "decline" in body["allowed"]
    with session_scope(world.engine) as s:
        assert cases.get_case(s, ref).state == "advised"  # nothing was declined


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"la_told_on": "10/11/2026"}, "la_told_on", "give a real date"),
        ({"la_told_on": "2099-01-01"}, "la_told_on", "cannot be right"),
        ({"la_told_on": "1999-01-01"}, "la_told_on", "cannot be right"),
        ({"colour": "blue"}, "colour", "does not take colour"),
        ({"health_care": "perhaps"}, "health_care", "yes or no"),
    ],
)
def test_bad_event_data_is_422_naming_the_field(
    world: World, data: dict[str, Any], field: str, words: str
) -> None:
    ref = world.refs["kids"]
    advance_via_api(world, ref, "advise")
    body = _error(
        world.post(
            "adviser", f"/api/v1/cases/{ref}/events", {"event": "choose_mediation", "data": data}
        ),
        422,
    )
    assert body["field"] == field
    assert words in body["error"]


def test_a_value_missing_is_422_naming_the_field_in_the_apis_words(world: World) -> None:
    """The same rule as the CLI's, without the CLI's ``--set`` hint."""
    ref = world.refs["kids"]
    body = _error(
        world.post("adviser", f"/api/v1/cases/{ref}/events", {"event": "withdraw", "data": {}}),
        422,
    )
    assert body["field"] == "reason"
    assert body["error"] == "Why the family withdrew: this is needed."


# Pydantic's own wording, which must never reach an API client.
PYDANTIC_WORDS = ("Value error", "Input should be", "JSON decode error", "Field required", "[")


def test_unknown_event_or_malformed_body_is_422_in_our_words(world: World) -> None:
    ref = world.refs["kids"]
    advance_via_api(world, ref, "advise")
    body = _error(world.post("adviser", f"/api/v1/cases/{ref}/events", {"event": "teleport"}), 422)
    assert body["field"] == "event"
    # The steps this case can take now, by the names a client sends.
    assert body["error"].startswith("'teleport' is not a step this case can take; possible now: ")
    assert "choose_mediation" in body["error"] and "choose_mediation" in body["allowed"]
    assert "issue_certificate" not in body["allowed"]
    response = world.client.post(
        f"/api/v1/cases/{ref}/events",
        headers={**world.headers("adviser"), "Content-Type": "application/json"},
        content=b"{not json",
    )
    broken = _error(response, 422)
    assert broken["field"] == "body"
    assert broken["error"].startswith("The request body is not valid JSON")
    assert "character 2" in broken["error"]
    empty = world.client.post(
        f"/api/v1/cases/{ref}/events",
        headers={**world.headers("adviser"), "Content-Type": "application/json"},
        content=b"",
    )
    assert _error(empty, 422)["error"].startswith("The request body is empty")
    a_list = _error(world.client.post(
        f"/api/v1/cases/{ref}/events", headers=world.headers("adviser"), json=["advise"]
    ), 422)  # fmt: skip
    assert a_list["field"] == "body" and "give a JSON object" in a_list["error"]
    data_list = world.post(
        "adviser", f"/api/v1/cases/{ref}/events", {"event": "advise", "data": {"note": 3}}
    )
    wrong_type = _error(data_list, 422)
    assert wrong_type["field"] == "data.note"
    assert wrong_type["errors"] == [{"field": "data.note", "message": "give text or true or false"}]
    extra = _error(
        world.post("adviser", f"/api/v1/cases/{ref}/events", {"event": "advise", "colour": 1}),
        422,
    )
    assert extra["field"] == "colour" and "does not take it" in extra["error"]
    for answer in (body, broken, a_list, wrong_type, extra):
        assert not any(words in answer["error"] for words in PYDANTIC_WORDS), answer
        for each in answer["errors"]:
            assert not any(words in each["message"] for words in PYDANTIC_WORDS), each


# --- Allocation ---------------------------------------------------------------------------


def test_suggestion_and_allocation_with_override(world: World) -> None:
    ref = world.refs["none"]
    suggestion = world.get("adviser", f"/api/v1/cases/{ref}/allocation/suggestion").json()
    # KIDS and Link carry one case each; the other three none: first in config order wins.
    assert suggestion["provider"] == {"code": "solution-talk", "name": "Solution Talk"}
    assert suggestion["reasons"][0].startswith("Solution Talk: lowest open load (0 cases)")
    assert {c["code"]: c["open_cases"] for c in suggestion["candidates"]}["kids"] == 1
    excluded = world.get(
        "adviser",
        f"/api/v1/cases/{ref}/allocation/suggestion",
        params={"exclude": ["solution-talk"], "preferred": "link"},
    ).json()
    assert excluded["provider"]["code"] == "link"
    assert "Solution Talk excluded: excluded for this case by the adviser" in excluded["reasons"]
    bad = _error(
        world.get(
            "adviser", f"/api/v1/cases/{ref}/allocation/suggestion", params={"preferred": "x"}
        ),
        422,
    )
    assert bad["field"] == "preferred"

    refused = _error(
        world.post("adviser", f"/api/v1/cases/{ref}/allocation", {"provider": "collis"}), 422
    )
    assert refused["field"] == "override_reason"
    assert "the suggestion is Solution Talk" in refused["error"]
    done = world.post(
        "adviser",
        f"/api/v1/cases/{ref}/allocation",
        {"provider": "collis", "override_reason": "family used Collis before", "note": "rang"},
    )
    assert done.status_code == 200, done.text
    allocation = done.json()["allocation"]
    assert allocation["provider"]["code"] == "collis"
    assert allocation["override_reason"] == "family used Collis before"
    assert allocation["allocated_by"] == "user:adviser@example.org"


def test_allocation_following_the_suggestion_and_unknown_provider(world: World) -> None:
    ref = world.refs["none"]
    ok = world.post("manager", f"/api/v1/cases/{ref}/allocation", {"provider": "Solution Talk"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["allocation"]["override_reason"] == ""
    body = _error(
        world.post("manager", f"/api/v1/cases/{ref}/allocation", {"provider": "acme"}), 422
    )
    assert body["field"] == "provider"


def test_allocation_with_a_stale_version_is_409(world: World) -> None:
    ref = world.refs["none"]
    body = _error(
        world.post(
            "adviser",
            f"/api/v1/cases/{ref}/allocation",
            {"provider": "solution-talk", "expected_version": 7},
        ),
        409,
    )
    assert "expected_version=1" in body["error"]


def test_provider_accepts_and_declines(world: World) -> None:
    accepted = world.post(
        "kids", f"/api/v1/cases/{world.refs['kids']}/allocation/response", {"answer": "accept"}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["allocation"]["status"] == "accepted"
    again = _error(
        world.post(
            "kids", f"/api/v1/cases/{world.refs['kids']}/allocation/response", {"answer": "accept"}
        ),
        409,
    )
    assert "no allocation waiting" in again["error"]
    no_reason = _error(
        world.post(
            "link", f"/api/v1/cases/{world.refs['link']}/allocation/response", {"answer": "decline"}
        ),
        422,
    )
    assert no_reason["field"] == "note"
    declined = world.post(
        "link",
        f"/api/v1/cases/{world.refs['link']}/allocation/response",
        {"answer": "decline", "note": "no mediator free"},
    )
    assert declined.status_code == 204, declined.text
    # Back with the adviser; Link no longer sees it.
    _error(world.get("link", f"/api/v1/cases/{world.refs['link']}"), 404)
    suggestion = world.get(
        "adviser", f"/api/v1/cases/{world.refs['link']}/allocation/suggestion"
    ).json()
    assert "Link Mediation Ltd excluded: declined this case before" in suggestion["reasons"]


def test_provider_records_the_meeting_on_its_own_case(world: World) -> None:
    ref = world.refs["kids"]
    early = _error(
        world.post(
            "kids",
            f"/api/v1/cases/{ref}/events",
            {"event": "schedule_meeting", "data": {"meeting_on": "2026-11-20"}},
        ),
        409,
    )
    assert "Accept the allocation" in early["error"]
    accepted = world.post("kids", f"/api/v1/cases/{ref}/allocation/response", {"answer": "accept"})
    assert accepted.status_code == 200, accepted.text
    advance_via_api(world, ref, "advise")
    advance_via_api(world, ref, "choose_mediation", la_told_on="2026-11-10")
    detail = world.get("kids", f"/api/v1/cases/{ref}").json()
    assert {e["event"] for e in detail["allowed_events"]} == {
        "schedule_meeting",
        "record_meeting",
        "report_not_arranged",
    }
    scheduled = advance_via_api(
        world, ref, "schedule_meeting", role="kids", meeting_on="2026-11-20"
    )
    assert scheduled["facts"]["meeting_on"] == "2026-11-20"
    refused = _error(
        world.post("kids", f"/api/v1/cases/{ref}/events", {"event": "withdraw", "data": {}}), 403
    )
    assert "the IAS adviser's step" in refused["error"]
    assert "record_meeting" in refused["allowed"]
    wrong_time = _error(
        world.post("kids", f"/api/v1/cases/{ref}/events", {"event": "issue_certificate"}), 409
    )
    # The refusal offers provider staff their own next steps, never the adviser's
    # (a meeting is arranged now, so cancelling it is one of them).
    assert set(wrong_time["allowed"]) == {
        "schedule_meeting",
        "cancel_meeting",
        "record_meeting",
        "report_not_arranged",
    }
    assert "withdraw" not in wrong_time["error"]


# --- Deadlines and notices --------------------------------------------------------------


def test_deadlines_list_and_filters(world: World) -> None:
    for nonsense in ("0", "1900-01-01"):
        refused = world.get("adviser", "/api/v1/deadlines", params={"due_before": nonsense})
        assert refused.status_code == 422, nonsense
    doc = world.client.get("/api/v1/openapi.json").json()
    assert "400" in doc["paths"]["/api/v1/cases"]["post"]["responses"]
    page = world.get("adviser", "/api/v1/deadlines").json()
    refs = {d["reference"] for d in page["items"]}
    assert refs == set(world.refs.values())
    assert page["items"] == sorted(page["items"], key=lambda d: d["due_at"])
    assert all(d["explanation"] and d["citation"] for d in page["items"])
    soon = world.get("adviser", "/api/v1/deadlines", params={"due_before": "2026-11-13"}).json()
    assert {d["kind"] for d in soon["items"]} == {"allocation_acceptance"}
    met = world.get("adviser", "/api/v1/deadlines", params={"status": "met"}).json()
    assert met["total"] == 0
    body = _error(world.get("adviser", "/api/v1/deadlines", params={"status": "late"}), 422)
    assert body["field"] == "status"
    bad_date = _error(world.get("adviser", "/api/v1/deadlines", params={"due_before": "soon"}), 422)
    assert bad_date["field"] == "due_before"


def _add_notice(engine: Engine, ref: str, recipient: str, status: str = "queued") -> None:
    with session_scope(engine) as s:
        case = cases.get_case(s, ref)
        s.add(
            Notice(
                idempotency_key=f"test:{ref}:{recipient}:{status}",
                case_id=case.id,
                template="test",
                recipient_role=recipient,
                channel="email",
                to_address=f"{recipient}@example.org",
                status=status,
                not_before=NOW,
                created_at=NOW,
            )
        )
        s.commit()


def test_notices_list_and_filters(world: World) -> None:
    for ref in world.refs.values():
        _add_notice(world.engine, ref, "family", "sent")
        _add_notice(world.engine, ref, "provider", "queued")
    everything = world.get("adviser", "/api/v1/notices", params={"limit": 200}).json()
    ours = [n for n in everything["items"] if n["template"] == "test"]
    assert len(ours) == 6
    one = world.get("adviser", "/api/v1/notices", params={"case": world.refs["kids"]}).json()
    assert {n["reference"] for n in one["items"]} == {world.refs["kids"]}
    sent = world.get("adviser", "/api/v1/notices", params={"status": "sent"}).json()
    assert all(n["status"] == NoticeStatus.sent for n in sent["items"])
    assert _error(world.get("adviser", "/api/v1/notices", params={"case": "X-1"}), 404)


def test_provider_sees_only_notices_to_its_provider_on_its_cases(world: World) -> None:
    for ref in world.refs.values():
        _add_notice(world.engine, ref, "family")
        _add_notice(world.engine, ref, "provider")
    page = world.get("kids", "/api/v1/notices", params={"limit": 200}).json()
    assert page["items"]
    assert {(n["reference"], n["recipient_role"]) for n in page["items"]} == {
        (world.refs["kids"], "provider")
    }


# --- The isolation matrix: every role against every case, by every route ------------------


def _may_see(role: str, case: str) -> bool:
    return role in STAFF or role == case


CASE_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/cases/{ref}", None),
    ("POST", "/api/v1/cases/{ref}/events", {"event": "schedule_meeting", "data": {}}),
    ("GET", "/api/v1/cases/{ref}/allocation/suggestion", None),
    ("POST", "/api/v1/cases/{ref}/allocation", {"provider": "together-trust"}),
    ("POST", "/api/v1/cases/{ref}/allocation/response", {"answer": "accept"}),
    ("GET", "/api/v1/notices?case={ref}", None),
]


@pytest.mark.parametrize("role", ROLES)
def test_isolation_matrix(world: World, role: str) -> None:
    """A provider's token gets 404 for every other case by every route; staff reach all."""
    for case in ("kids", "link", "none"):
        ref = world.refs[case]
        for method, template, body in CASE_ROUTES:
            url = template.format(ref=ref)
            response = (
                world.get(role, url) if method == "GET" else world.post(role, url, body or {})
            )
            where = f"{role} {method} {url}"
            if not _may_see(role, case):
                assert response.status_code == 404, where
                assert response.json()["error"].startswith("no case with reference"), where
                assert ref not in response.text.replace(f"'{ref}'", ""), where
            else:
                # Visible: whatever the answer, it is never "not found".
                assert response.status_code != 404, (where, response.text)
                assert response.status_code < 500, (where, response.text)


@pytest.mark.parametrize("role", ROLES)
def test_lists_are_filtered_by_role(world: World, role: str) -> None:
    cases = {c["reference"] for c in world.get(role, "/api/v1/cases").json()["items"]}
    deadlines = {d["reference"] for d in world.get(role, "/api/v1/deadlines").json()["items"]}
    expected = {world.refs[c] for c in ("kids", "link", "none") if _may_see(role, c)}
    assert cases == expected
    assert deadlines == expected


@pytest.mark.parametrize("role", ["kids", "link"])
def test_provider_staff_cannot_open_or_allocate(world: World, role: str) -> None:
    body = _error(world.post(role, "/api/v1/cases", INTAKE), 403)
    assert "cannot open cases" in body["error"]
    own = world.refs[role]
    allocation = _error(
        world.post(role, f"/api/v1/cases/{own}/allocation", {"provider": "kids"}), 403
    )
    assert "cannot allocate" in allocation["error"]
    _error(world.get(role, f"/api/v1/cases/{own}/allocation/suggestion"), 403)
    with session_scope(world.engine) as s:
        assert s.execute(select(Case)).all().__len__() == 3


def test_nothing_viewed_is_recorded_for_a_refused_read(world: World) -> None:
    world.get("kids", f"/api/v1/cases/{world.refs['link']}")
    with session_scope(world.engine) as s:
        views = s.execute(select(CaseEvent).where(col(CaseEvent.event) == "viewed")).all()
        assert views == []


def test_factories_and_api_agree_on_the_cast(world: World) -> None:
    """Cases made by factories read back through the API with their family contact."""
    detail = world.get("adviser", f"/api/v1/cases/{world.refs['none']}").json()
    assert detail["contact"]["name"] == "Unallocated Family"
    assert detail["allocation"] is None and detail["provider"] is None


def test_a_405_names_every_method_the_path_has(world: World) -> None:
    """The Allow header matches the OpenAPI document (GET and POST on /cases)."""
    answer = world.client.put("/api/v1/cases", headers=world.headers("adviser"))
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"


def test_the_api_docs_page_loads_its_assets_from_the_app(world: World) -> None:
    """Offline and under the app's own address: no CDN."""
    # The bundle comes from npm (casework/web/package.json), as the pages' assets do; the
    # service installs them on its first start, the test environment does not. Installed
    # here, as the browser tests install theirs, so the README's test command passes in
    # a fresh clone whichever test happens to run first.
    problem = assets.ensure_assets(quiet=True)
    assert problem is None, problem
    page = world.client.get("/api/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "http://" not in page.text.replace(
        "http://testserver", ""
    )
    assert "/assets/swagger/swagger-ui-bundle.js" in page.text
    bundle = world.client.get("/assets/swagger/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
