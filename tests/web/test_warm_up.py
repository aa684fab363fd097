"""``casework serve`` warms a web process up before it listens (:func:`warm_up`).

A process starting cold compiled its templates, built its calendars, opened its
database connections and counted the cases per state while its first visitors waited;
the second of ``serve --workers 2`` did all that under load. These check that after
the warm-up a first page needs none of it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import QueuePool

from casework.web.app import admission_limit, warm_up
from casework.web.pages import common
from tests.web.conftest import Web, make_case


def test_after_the_warm_up_a_first_dashboard_compiles_no_template_and_counts_nothing(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_case(web, name="Family Warm")
    common._env.cache.clear()  # as in a process that has drawn nothing yet
    web.app.state.state_counts = None
    warm_up(web.app)

    counted = web.app.state.state_counts
    assert counted is not None and sum(counted[1].values()) == 1
    pool = web.engine.pool
    if isinstance(pool, QueuePool):
        assert pool.checkedin() >= admission_limit(web.engine)

    def no_compiling(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a template was compiled while a visitor waited")

    monkeypatch.setattr(common._env, "compile", no_compiling)
    response = web.browser("adviser").get("/")
    assert response.status_code == 200 and "Family Warm" in response.text
