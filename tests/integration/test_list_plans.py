"""The adviser's list reads its page of clocks off an index, ties on the due moment too.

Clocks fall due at 5pm on a working day, so hundreds share one ``due_at``. The list
orders them by ``due_at, id``; with ``id`` missing from the index PostgreSQL read every
clock of the first due moment and sorted them to draw 25 (12 ms a dashboard at 100,000
cases). SQLite's indexes end with the rowid, which its planner uses. PostgreSQL is
asked with sorting priced out, so the plan says whether an index can give the order at
all, whatever the size of the test's tables.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import Engine, insert, text

from casework.cases.search import CaseCriteria, _kept_statements
from casework.models import Case, Deadline

N = 600
DUE = dt.datetime(2026, 12, 1, 17, 0, tzinfo=dt.UTC)


def _fill(engine: Engine) -> None:
    opened = DUE - dt.timedelta(days=30)
    cases = [
        {
            "id": i,
            "reference": f"MED-2026-{i:06d}",
            "public_id": f"p{i}",
            "kind": "mediation",
            "state": "mediating",
            "intake_channel": "helpline",
            "opened_at": opened,
            "updated_at": opened,
            "summary": "",
            "child_name": "",
            "health_care": False,
            "health_only": False,
            "placement_only": False,
        }
        for i in range(1, N + 1)
    ]
    clocks = [
        {
            "case_id": i,
            "kind": "mediation_meeting",
            "due_date": DUE.date(),
            "due_at": DUE,  # every clock due at the same moment
            "status": "open",
            "citation": "test",
            "explanation": "test",
            "opened_at": opened,
        }
        for i in range(1, N + 1)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Case), cases)
        conn.execute(insert(Deadline), clocks)
        conn.execute(text("ANALYZE cases, deadlines"))


def _nodes(plan: dict[str, object]) -> list[str]:
    children = plan.get("Plans", [])
    assert isinstance(children, list)
    return [str(plan["Node Type"]), *(n for child in children for n in _nodes(child))]


def test_the_first_page_of_open_clocks_is_not_sorted_after_reading_them_all(
    engine: Engine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's indexes carry the rowid for ties; PostgreSQL's need the id")
    _fill(engine)
    _, parts = _kept_statements(CaseCriteria(sort="urgency"))
    assert parts is not None
    open_clocks = parts[1][0]  # the cases by their soonest open clock, paged
    sql = open_clocks.params(page_limit=25, page_offset=0).compile(
        engine, compile_kwargs={"literal_binds": True}
    )
    with engine.connect() as conn:
        # Whether the order CAN come from an index, asked without the table's size
        # deciding it: a sort is then chosen only when nothing else gives the order.
        conn.exec_driver_sql("SET LOCAL enable_sort = off")
        conn.exec_driver_sql("SET LOCAL enable_incremental_sort = off")
        raw = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").scalar_one()
    plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
    # Above the join, the page is cut from rows already in order (the Sort deeper
    # down orders one case's own two or three clocks to pick its next one).
    top = _nodes(plan)
    assert top[0] == "Limit" and top[1] not in ("Sort", "Incremental Sort"), top
