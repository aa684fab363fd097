"""Transport in production: Secure cookies, HSTS, and no start on a plain-http address.

Production is reached over https, directly or through a proxy that terminates TLS.
Cookies are then always Secure and every response carries Strict-Transport-Security;
an http public URL is refused at start-up unless the operator says a TLS-terminating
proxy sits in front, and the refusal names exactly what to set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from casework.cli import app as cli_app
from casework.config import ConfigError, Settings, load_settings
from casework.web import assets
from casework.web.app import create_app
from casework.web.deps import SESSION_COOKIE
from casework.web.security import SIGN_IN_CSRF_COOKIE, STRICT_TRANSPORT_SECURITY
from tests.conftest import forget_cached_settings_and_engine
from tests.web.conftest import CAST, PASSWORD, Browser, Web, csrf_in

SECRET = "a-long-random-production-secret-for-the-tests"


def production(**overrides: Any) -> Settings:
    return load_settings(environment="production", secret_key=SECRET, **overrides)


def test_production_refuses_a_plain_http_public_url_and_says_what_to_set() -> None:
    with pytest.raises(ConfigError) as refused:
        production(public_url="http://casework.example.org")
    message = str(refused.value)
    assert "http://casework.example.org" in message
    assert "CASEWORK_PUBLIC_URL" in message and "https://" in message
    assert "CASEWORK_BEHIND_TLS_PROXY=true" in message
    assert "validation error" not in message and "pydantic" not in message


def test_production_starts_on_https_or_behind_a_tls_proxy() -> None:
    assert production(public_url="https://casework.example.org").tls_required
    behind = production(public_url="http://casework.internal:8000", behind_tls_proxy=True)
    assert behind.tls_required
    assert not load_settings(environment="development").tls_required


@pytest.fixture
def production_web(web: Web, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    """The cast's app in production behind a TLS proxy (plain http inside)."""
    monkeypatch.setattr(assets, "ensure_assets", lambda quiet=False: None)
    settings = production(public_url="http://casework.internal:8000", behind_tls_proxy=True)
    app = create_app(settings, web.engine)
    app.state.clock = web.clock
    yield Browser(app, base_url="https://testserver")  # the browser talks to the proxy


def _cookie(response: Any, name: str) -> str:
    return next(c for c in response.headers.get_list("set-cookie") if c.startswith(name))


def test_production_cookies_are_always_secure(production_web: Browser) -> None:
    page = production_web.get("/sign-in")
    assert "Secure" in _cookie(page, SIGN_IN_CSRF_COOKIE)
    response = production_web.post(
        "/sign-in", {"email": CAST["adviser"][0], "password": PASSWORD}, csrf=csrf_in(page.text)
    )
    assert response.status_code == 303
    session_cookie = _cookie(response, SESSION_COOKIE)
    assert "Secure" in session_cookie and "HttpOnly" in session_cookie


def test_production_sends_hsts_on_every_response(production_web: Browser) -> None:
    for url in ("/sign-in", "/health", "/static/casework.css", "/no-such-page"):
        response = production_web.get(url)
        assert response.headers["strict-transport-security"] == STRICT_TRANSPORT_SECURITY, url
    assert STRICT_TRANSPORT_SECURITY.startswith("max-age=63072000")


def test_a_local_http_run_sends_no_hsts(web: Web) -> None:
    assert "strict-transport-security" not in web.browser().get("/sign-in").headers


# --- Start-up through the CLI -------------------------------------------------------------


@pytest.fixture
def started(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Production environment on this test's database; records what would have started."""
    from casework import scheduler

    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "production")
    monkeypatch.setenv("CASEWORK_SECRET_KEY", SECRET)
    monkeypatch.setenv("CASEWORK_PUBLIC_URL", "http://casework.example.org")
    monkeypatch.setattr(assets, "ensure_assets", lambda quiet=False: None)
    record: list[str] = []
    monkeypatch.setattr("casework.cli.ops.run_server", lambda *a, **k: record.append("serve"))
    monkeypatch.setattr(scheduler, "run_worker", lambda *a, **k: record.append("worker"))
    monkeypatch.setattr("casework.logs.configure", lambda *a, **k: None)
    yield record
    forget_cached_settings_and_engine()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_plain_http_in_production(
    started: list[str], command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(cli_app, [command])
    assert result.exit_code == 2, result.output
    assert "CASEWORK_BEHIND_TLS_PROXY=true" in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert started == []
    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_BEHIND_TLS_PROXY", "true")
    result = CliRunner().invoke(cli_app, [command])
    assert result.exit_code == 0, (result.output, result.exception)
    assert started == [command]
