"""Route matching skips a router none of whose addresses can match the path
(casework.web.routing), and the route that answers is the one it always was."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from starlette.routing import Match
from starlette.types import Scope

from casework.web import api, portal, webhooks
from casework.web import pages as web_pages
from casework.web.routing import PrefixRouter
from tests.web.conftest import Web


def test_every_included_router_is_a_prefix_router(web: Web) -> None:
    for router in (api.router, webhooks.router, web_pages.router, portal.router):
        assert isinstance(router, PrefixRouter)


def test_routers_that_cannot_match_are_not_searched(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    searched: list[APIRouter] = []
    search = APIRouter.matches

    def counting(self: APIRouter, scope: Scope) -> tuple[Match, Any]:
        searched.append(self)
        return search(self, scope)

    monkeypatch.setattr(APIRouter, "matches", counting)
    client = TestClient(web.app)
    assert client.get("/health").status_code == 200
    assert searched == []  # the API, webhooks, reports, pages and portal: all skipped
    assert client.get("/api/v1/cases").status_code == 401  # the API's own answer
    assert api.router in searched
    assert web_pages.router not in searched


def test_pages_api_and_a_slash_still_route_as_before(web: Web) -> None:
    browser = web.browser("adviser")
    assert browser.get("/").status_code == 200
    assert browser.get("/cases/new").status_code == 200
    assert browser.get("/cases/MED-2026-99999").status_code == 404
    assert browser.get("/portal").status_code == 403  # the portal's own refusal
    slash = browser.get("/cases/new/")
    assert slash.status_code == 307
    assert slash.headers["location"].endswith("/cases/new")
    missing = browser.get("/no-such-page")
    assert missing.status_code == 404
    assert "Page not found" in missing.text
    assert TestClient(web.app).post("/health").status_code == 405
