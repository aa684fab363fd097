"""Fuzz the REST API from its own OpenAPI document: no input may cause a server error.

Schemathesis generates requests for every operation in ``/api/v1/openapi.json`` and
sends them through the ASGI app in-process (no network), authenticated as an adviser
(the role that reaches every route). The only check is ``not_a_server_error``: a 4xx
that says what to fix is a correct answer to nonsense, a 500 never is. Examples are
bounded (25 per operation; ``CASEWORK_FUZZ_EXAMPLES=500`` for a deeper run) so the
whole run stays under a minute; SQLite only (the API tests cover both databases route
by route).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from casework import auth, cases
from casework.config import load_settings
from casework.db import make_engine, session_scope, upgrade
from casework.web.app import create_app
from tests.conftest import ADVISER, at
from tests.factories import allocate_to, create_case

NOW = at("2026-11-10")


# The schema is loaded when the module is imported (from the app's own document, through
# ASGI); the database behind the app is filled by the module fixture below. (Schemathesis
# 4.32's fixture-based loader, `schemathesis.pytest.from_fixture`, relies on a pytest
# internal that pytest 9 removed, so the eager loader is used.)
_DB_DIR = Path(tempfile.mkdtemp(prefix="casework-fuzz-"))
atexit.register(shutil.rmtree, _DB_DIR, ignore_errors=True)
_SETTINGS = load_settings(environment="test")
# CASEWORK_FUZZ_DATABASE_URL points a one-off run at an empty PostgreSQL schema instead.
_ENGINE = make_engine(
    os.environ.get("CASEWORK_FUZZ_DATABASE_URL") or f"sqlite:///{_DB_DIR / 'casework.db'}"
)
APP = create_app(_SETTINGS, _ENGINE)
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)


@pytest.fixture(scope="module")
def adviser_token() -> Iterator[str]:
    """Migrate and fill the app's database; an adviser's token reaches every route."""
    upgrade(_ENGINE)
    with session_scope(_ENGINE) as session:
        cases.sync_providers(session, _SETTINGS)
        user = auth.create_user(session, email="fuzz@example.org", role="adviser", now=NOW)
        token = auth.create_api_token(session, user, name="fuzz", now=NOW)
        # Real references exist, so some generated requests reach a case.
        for _ in range(3):
            case = create_case(session, _SETTINGS)
        allocate_to(session, case.reference, "kids", now=NOW, actor=ADVISER, settings=_SETTINGS)
    yield token
    _ENGINE.dispose()


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("CASEWORK_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_server_errors(case: Any, adviser_token: str) -> None:
    response = case.call(headers={"Authorization": f"Bearer {adviser_token}"})
    case.validate_response(response, checks=[not_a_server_error])
