"""Random lives of a case, driven through the service layer, must always explain themselves.

Hypothesis plays an adviser, a family and provider staff who do things in any order:
valid events, events the case cannot take now, typos, dates in the future, missing
or malformed data, allocations to unknown providers, answers from the wrong
provider, while time only moves forward. After every step the case on disk must
still be explicable from its audit trail, because that trail is what an IAS
service shows a Tribunal or a complaint investigator:

* the first event is ``open`` into ``requested``; each event starts where the
  previous one ended; the last one ends in the case's current state;
* a refused action (any ``CaseworkError``) left no event, no clock and no change of
  state or version behind;
* an accepted action added exactly one event and bumped the version once, so the
  version always equals the number of events (each changed the case row once);
* a successful flow event landed where the hand-written tables in ``test_states``
  say it should (the service layer adds no hidden transitions);
* a closed or withdrawn case has no open clock; every clock's status is one of
  open/met/missed/cancelled; no kind of clock is open twice at once.

This lives under ``unit/`` because it needs no server: one SQLite file, migrated
once per test run, with a fresh case per example.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine

from casework import cases
from casework import deadlines as dl
from casework.cases.effects import event_fields
from casework.cases.fields import EventField
from casework.config import Settings, load_settings
from casework.db import make_engine, session_scope, upgrade
from casework.models import DeadlineStatus
from casework.states import (
    FINAL_STATES,
    CaseKind,
    CaseState,
    all_events,
    flow_for,
)
from tests.factories import allocate_to
from tests.unit.test_states import DISAGREEMENT_TABLE, MEDIATION_TABLE

ADVISER = cases.Actor(id="user:alice.adviser@ias.example.org", role="adviser", channel="web")
TABLES = {CaseKind.mediation: MEDIATION_TABLE, CaseKind.disagreement: DISAGREEMENT_TABLE}
EVENTS = [*sorted(set(all_events("mediation")) | set(all_events("disagreement"))), "frobnicate"]
PROVIDERS = ["solution-talk", "collis", "kids", "link", "together-trust"]
STATUSES = {s.value for s in DeadlineStatus}
# Days that pass before an action: the same day, the next, a working week, a month
# (past the 30-day meeting limit) or more; each clock gets met, met late or missed.
WAITS = st.sampled_from([0, 1, 0, 3, 10, 35])
# States in which a case must have a provider: the guards demand one to get there
# and a provider can only hand a case back before mediation starts.
NEEDS_PROVIDER = {CaseState.mediating, CaseState.allocated, CaseState.meeting_held}


@pytest.fixture(scope="module")
def flow_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Settings]]:
    """One migrated SQLite database with the configured providers, shared by all examples."""
    path = Path(tmp_path_factory.mktemp("flow")) / "flow.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    config = load_settings(environment="test")
    with session_scope(engine) as session:
        cases.sync_providers(session, config)
    yield engine, config
    engine.dispose()


def sensible_values(field: EventField, today: dt.date) -> st.SearchStrategy[Any]:
    """What a careful adviser would enter: dates that make sense, valid choices."""
    if field.name == "meeting_on":  # a meeting is arranged for a day to come
        return st.integers(0, 20).map(lambda k: (today + dt.timedelta(days=k)).isoformat())
    if field.type == "date":
        return st.sampled_from(["", today.isoformat(), today])
    if field.type == "bool":
        return st.sampled_from(["yes", "no", True, False])
    if field.type == "choice":
        return st.sampled_from(field.choices)
    if field.name == "meeting_time":
        return st.sampled_from(["10:00", "14:30"])
    return st.sampled_from(["what the family said on the call", "as agreed in writing"])


def careless_values(field: EventField, today: dt.date) -> st.SearchStrategy[Any]:
    """What also arrives: future or back-dated days, bad formats, blanks, unknown choices."""
    if field.type == "date":
        return st.one_of(
            st.integers(0, 40).map(lambda k: (today - dt.timedelta(days=k)).isoformat()),
            st.integers(0, 40).map(lambda k: today - dt.timedelta(days=k)),  # typed values
            st.integers(1, 20).map(lambda k: (today + dt.timedelta(days=k)).isoformat()),
            st.sampled_from(["31/12/2026", "", "2026-02-30"]),
        )
    if field.type == "bool":
        return st.sampled_from(["yes", "no", "", "maybe"])
    if field.type == "choice":
        return st.sampled_from([*field.choices, "bogus", ""])
    if field.name == "meeting_time":
        return st.sampled_from(["9:30", "25:00", "noon", ""])
    return st.sampled_from(["", "   ", "x" * 300, "a note"])


class CaseLife(RuleBasedStateMachine):
    """One case per example, pushed around by whoever Hypothesis picks."""

    engine: ClassVar[Engine]
    config: ClassVar[Settings]
    provider_ids: ClassVar[dict[str, int]]

    def __init__(self) -> None:
        super().__init__()
        self.now = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)
        self.reference = ""
        self.kind = CaseKind.mediation
        self.last_version = 0
        self.extra_bumps = 0  # see the module docstring: update_case_facts' double flush
        self.current: dict[str, Any] = {}

    # --- helpers -------------------------------------------------------------------------

    def tick(self, days: int = 0) -> dt.datetime:
        """Time only moves forward, and every action happens after the previous one."""
        self.now += dt.timedelta(days=days, minutes=1)
        return self.now

    def today(self) -> dt.date:
        return dl.local_date(self.now)

    def snapshot(self) -> dict[str, Any]:
        """Everything the database holds about the case, read through a fresh session."""
        with session_scope(self.engine) as session:
            case = cases.get_case(session, self.reference)
            return {
                "state": case.state,
                "kind_state": f"{case.kind}:{case.state}",
                "version": case.version,
                "provider_id": case.provider_id,
                "appeal_due": case.appeal_due,
                "allocation": getattr(cases.live_allocation(session, case), "status", None),
                "case": case.model_dump(exclude={"updated_at"}),
                "events": [
                    (e.id, e.event, e.from_state, e.to_state, e.at)
                    for e in cases.case_events(session, case)
                ],
                "deadlines": [
                    (d.id, d.kind, d.status, d.due_date, d.closed_reason, d.next_action_at)
                    for d in cases.case_deadlines(session, case)
                ],
            }

    def attempt(
        self, action: Callable[[Any], object], *, max_bumps: int = 1
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run one use case; a refusal must leave no trace, a success exactly one event.

        Only the use cases write, so the snapshot taken after the previous action is
        still the truth before this one (which halves the reads per step).
        """
        before = self.current
        refused = False
        with session_scope(self.engine) as session:
            try:
                action(session)
            except cases.CaseworkError as exc:
                refused = True
                event(f"refused: {type(exc).__name__}")
        after = self.current = self.snapshot()
        if refused:
            assert after == before, "a refused action changed the case"
        else:
            assert len(after["events"]) == len(before["events"]) + 1
            bumps = after["version"] - before["version"]
            assert 1 <= bumps <= max_bumps, f"the version moved by {bumps}"
            self.extra_bumps += bumps - 1
            event(f"reached {after['kind_state']}")
        return before, after

    def staff(self, code: str) -> cases.Actor:
        return cases.Actor(
            id=f"provider:{code}:sam",
            role="provider",
            channel="web",
            provider_id=self.provider_ids[code],
        )

    # --- what people do -----------------------------------------------------------------

    @initialize(
        kind=st.sampled_from(list(CaseKind)),
        start=st.dates(dt.date(2026, 1, 1), dt.date(2028, 12, 1)),
        lag=st.integers(0, 75),
        with_decision=st.booleans(),
        channel=st.sampled_from(["helpline", "email"]),
        bad_first=st.sampled_from([None, "", "0161 12", "call me", "07911 12345678"]),
    )
    def open_case(
        self,
        kind: CaseKind,
        start: dt.date,
        lag: int,
        with_decision: bool,
        channel: str,
        bad_first: str | None,
    ) -> None:
        """Sometimes a first attempt with a bad number, then a valid intake."""
        self.kind = kind
        self.now = dt.datetime.combine(start, dt.time(10), tzinfo=dl.LONDON).astimezone(dt.UTC)
        decision = start - dt.timedelta(days=lag) if with_decision else None

        def intake(phone: str) -> cases.Intake:
            return cases.Intake(
                kind=kind.value,
                name="Jo Family",
                phone=phone,
                channel=channel,
                email="jo.family@example.org",
                decision_date=decision,
                decision_type="refuse_assessment" if decision else None,
            )

        with session_scope(self.engine) as session:
            if bad_first is not None:
                count = cases.count_cases(session)
                with pytest.raises(cases.ValidationFailed) as failed:
                    cases.open_case(
                        session,
                        intake(bad_first),
                        now=self.tick(),
                        actor=ADVISER,
                        settings=self.config,
                    )
                assert failed.value.field == "phone"
                assert cases.count_cases(session) == count
            case = cases.open_case(
                session,
                intake("07911 123456"),
                now=self.tick(),
                actor=ADVISER,
                settings=self.config,
            )
            self.reference = case.reference
        self.current = self.snapshot()

    @rule(wait=WAITS, data=st.data())
    def offered_event(self, wait: int, data: st.DataObject) -> None:
        """An event the case offers now (what the UI shows), with data sometimes wrong."""
        # worked out from the last snapshot of the row, as a page would from a load
        row = SimpleNamespace(**self.current["case"])
        allowed = sorted(e.id for e in flow_for(row).enabled_events())
        onward = [name for name in allowed if name != "withdraw"]
        # Hypothesis favours boundary values, so "rare" is a value from the middle
        if onward and data.draw(st.integers(0, 9), label="withdraw instead") != 4:
            # mostly move the case on, so examples reach the later states and clocks
            name = data.draw(st.sampled_from(onward), label="event")
        elif allowed:
            name = data.draw(st.sampled_from(allowed), label="event")
        else:
            return
        self.fire(name, wait, data, careful=True)

    @rule(wait=WAITS, data=st.data())
    def any_event(self, wait: int, data: st.DataObject) -> None:
        """Any event of either flow, or a typo: what a stale page or a script might send."""
        careful = data.draw(st.booleans(), label="careful")
        self.fire(data.draw(st.sampled_from(EVENTS), label="event"), wait, data, careful=careful)

    def fire(self, name: str, wait: int, data: st.DataObject, *, careful: bool) -> None:
        """Send ``name`` through ``services.advance`` with drawn data; check where it lands."""
        now = self.tick(wait)
        today = self.today()
        payload: dict[str, Any] = {}
        for field in event_fields(self.kind, name):
            if careful:
                if field.required or field.name == "agreement" or data.draw(st.booleans()):
                    payload[field.name] = data.draw(sensible_values(field, today), label=field.name)
            elif data.draw(st.integers(0, 2), label=f"give {field.name}") > 0:
                payload[field.name] = data.draw(careless_values(field, today), label=field.name)
        if not careful and data.draw(st.integers(0, 9), label="typo") == 4:
            payload["colour"] = "blue"
        note = data.draw(st.sampled_from(["", "rang back"]), label="note")

        before, after = self.attempt(
            lambda session: cases.advance(
                session,
                self.reference,
                name,
                now=now,
                actor=ADVISER,
                settings=self.config,
                data=payload,
                note=note,
            )
        )
        if after["events"] != before["events"]:
            _id, recorded, from_state, to_state, _at = after["events"][-1]
            assert (recorded, from_state) == (name, before["state"])
            expected = TABLES[self.kind].get((CaseState(from_state), name))
            assert expected is not None, f"{name} from {from_state} is not in the flow table"
            assert to_state == expected.value == after["state"]
        else:
            event(f"refused {name}")

    # Preconditions keep each example moving: the swarm of rules Hypothesis enables per
    # example would otherwise spend most steps re-allocating a case that never advances.
    @precondition(
        lambda self: (
            self.current.get("provider_id") is None
            and self.current.get("state") in ("requested", "advised")
        )
    )
    @rule(wait=WAITS, provider=st.sampled_from([*PROVIDERS, "nobody-we-know"]))
    def allocate(self, wait: int, provider: str) -> None:
        """An adviser offers the case to a provider (or mistypes one)."""
        now = self.tick(wait)
        before, after = self.attempt(
            lambda session: allocate_to(
                session, self.reference, provider, now=now, actor=ADVISER, settings=self.config
            )
        )
        if after["events"] != before["events"]:
            assert after["events"][-1][1] == "allocate_provider"
            moved = self.kind == CaseKind.disagreement and before["state"] == CaseState.advised
            assert after["state"] == (CaseState.allocated if moved else before["state"])

    @precondition(lambda self: self.current.get("allocation") == "offered")
    @rule(
        wait=WAITS,
        accept=st.booleans(),
        who=st.sampled_from(["own", "own", "own", "other", "adviser"]),
        note=st.sampled_from(["", "no capacity this month"]),
    )
    def provider_answers(self, wait: int, accept: bool, who: str, note: str) -> None:
        """The case's provider, another provider, or an adviser answers the allocation."""
        now = self.tick(wait)
        provider_id = self.current["provider_id"]
        own = next((code for code, pid in self.provider_ids.items() if pid == provider_id), None)
        actor = ADVISER
        if who == "own" and own is not None:
            actor = self.staff(own)
        elif who != "adviser":
            actor = self.staff(next(code for code in PROVIDERS if code != own))
        before, after = self.attempt(
            lambda session: cases.respond_to_allocation(
                session,
                self.reference,
                accept=accept,
                now=now,
                actor=actor,
                settings=self.config,
                note=note,
            )
        )
        if after["events"] != before["events"]:
            if not accept and before["state"] == "allocated":
                # A declined disagreement-resolution case goes back to the adviser.
                assert after["state"] == "advised"
                assert after["provider_id"] is None
            else:
                assert after["state"] == before["state"]
            assert actor.provider_id in (None, provider_id), "another provider answered"

    @precondition(
        lambda self: (
            self.current.get("state") in ("requested", "advised")
            and self.current.get("case", {}).get("decision_date") is None
        )
    )
    @rule(
        wait=WAITS,
        days_back=st.integers(0, 90),
        decision_type=st.sampled_from([None, "cease_plan", "x"]),
    )
    def correct_decision(self, wait: int, days_back: int, decision_type: str | None) -> None:
        """The adviser learns (or corrects) the LA's decision date on the call-back."""
        now = self.tick(wait)
        decision = self.today() - dt.timedelta(days=days_back)
        self.attempt(
            lambda session: cases.update_case_facts(
                session,
                self.reference,
                now=now,
                actor=ADVISER,
                settings=self.config,
                decision_date=decision,
                decision_type=decision_type,
                note="the LA's letter was misread",
            ),
        )

    # --- what must always hold ---------------------------------------------------------------

    @invariant()
    def the_audit_trail_explains_the_state(self) -> None:
        if not self.reference:
            return
        now = self.current
        events = now["events"]
        assert events, "a case without its open event"
        assert events[0][1:4] == ("open", None, "requested")
        for previous, following in itertools.pairwise(events):
            assert following[2] == previous[3], (previous[1], following[1])
            assert following[4] >= previous[4], "the trail goes back in time"
        assert events[-1][3] == now["state"]
        # each recorded event changed the case row exactly once (bar the counted exception)
        assert now["version"] == len(events) + self.extra_bumps
        assert now["version"] >= self.last_version
        self.last_version = now["version"]

        statuses = [status for _id, _kind, status, *_rest in now["deadlines"]]
        assert set(statuses) <= STATUSES
        still_open = [kind for _id, kind, status, *_rest in now["deadlines"] if status == "open"]
        if now["state"] in FINAL_STATES:
            assert still_open == [], f"{now['state']} case with open clocks {still_open}"
        twice = {kind for kind in still_open if still_open.count(kind) > 1}
        assert not twice, f"a clock open twice: {still_open}"
        if now["state"] in NEEDS_PROVIDER:
            assert now["provider_id"] is not None
        if self.kind == CaseKind.mediation and now["state"] in (
            CaseState.certificate_issued,
            CaseState.appeal_ready,
        ):
            assert now["appeal_due"] is not None


def test_random_lives_of_a_case_keep_the_audit_trail_consistent(
    flow_db: tuple[Engine, Settings],
) -> None:
    """Up to 60 random case lives of up to 30 steps each, through the real use cases."""
    CaseLife.engine, CaseLife.config = flow_db
    with session_scope(CaseLife.engine) as session:
        CaseLife.provider_ids = {
            code: cases.find_provider(session, code).id  # type: ignore[misc]
            for code in PROVIDERS
        }
    run_state_machine_as_test(
        CaseLife,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            # each step is a database transaction: shrinking one bug, not several, keeps a
            # failing run to a few minutes at worst
            report_multiple_bugs=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
