"""The first five minutes: a fresh install offers a way in; the demo's passwords come last."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from casework.cli.ops import prepare_start, startup_message
from casework.config import Settings
from casework.db import session_scope
from casework.models import User
from casework.web.app import create_app
from tests.web.conftest import Web, csrf_in

NEW_PASSWORD = "four unrelated words here"


def _users(engine: Engine) -> list[User]:
    with session_scope(engine) as s:
        return list(s.execute(select(User)).scalars())


def _link_in(message: str) -> str:
    return next(w for w in message.split() if "/set-password/" in w)


def test_a_fresh_install_prints_a_link_to_create_the_first_admin(
    engine: Engine, settings: Settings
) -> None:
    message = prepare_start(
        settings,
        engine,
        host="127.0.0.1",
        port=8000,
        demo=False,
        admin_email="Head@ias.example.org",
    )
    assert message.startswith("casework is running at http://127.0.0.1:8000/")
    assert "Nobody can sign in yet" in message and "head@ias.example.org" in message
    [admin] = _users(engine)
    assert admin.role == "admin" and admin.password_hash == ""

    # Not used yet: the next start offers a fresh link to the same admin, no second user.
    again = prepare_start(settings, engine, host="127.0.0.1", port=8000, demo=False)
    assert "head@ias.example.org" in again
    assert _link_in(message).startswith("http://127.0.0.1:8000/set-password/")
    elsewhere = prepare_start(settings, engine, host="127.0.0.1", port=8765, demo=False)
    assert _link_in(elsewhere).startswith("http://127.0.0.1:8765/set-password/")
    assert len(_users(engine)) == 1

    client = TestClient(create_app(settings, engine), follow_redirects=False)
    path = urlsplit(_link_in(again)).path
    page = client.get(path)
    assert page.status_code == 200 and "head@ias.example.org" in page.text
    chosen = client.post(
        path,
        data={
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
            "csrf_token": csrf_in(page.text),
        },
    )
    assert chosen.status_code == 303
    sign_in = client.get("/sign-in")
    signed_in = client.post(
        "/sign-in",
        data={
            "email": "head@ias.example.org",
            "password": NEW_PASSWORD,
            "csrf_token": csrf_in(sign_in.text),
        },
    )
    # An administrator must set up two-factor sign-in before reaching any page.
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/account/two-factor"

    # Someone can sign in now: no more links at start-up.
    later = prepare_start(settings, engine, host="127.0.0.1", port=8000, demo=False)
    assert "/set-password/" not in later and "Nobody can sign in" not in later


def test_no_link_once_there_are_users(web: Web) -> None:
    message = prepare_start(web.settings, web.engine, host="127.0.0.1", port=8000, demo=False)
    assert "/set-password/" not in message
    assert message.count("\n") == 0  # just where it runs


def test_the_demo_credentials_come_last_in_a_box(engine: Engine, settings: Settings) -> None:
    message = prepare_start(settings, engine, host="127.0.0.1", port=8765, demo=True)
    lines = message.splitlines()
    assert lines[0].startswith("casework is running at http://127.0.0.1:8765/")
    assert lines[-1].startswith("+-") and lines[-1] == lines[1]  # the box closes the message
    inside = lines[2:-1]
    assert all(line.startswith("| ") and line.endswith(" |") for line in inside)
    assert len({len(line) for line in lines[1:]}) == 1  # a straight box
    assert any("adviser@demo.casework / " in line for line in inside)
    assert "/set-password/" not in message  # the demo has its own admin


def test_the_startup_message_without_anything_to_show() -> None:
    text = startup_message(url="http://127.0.0.1:8000/", database="sqlite:///x.db")
    assert text == "casework is running at http://127.0.0.1:8000/  (database: sqlite:///x.db)"


def test_the_sign_in_page_says_how_to_get_an_account(web: Web) -> None:
    html = web.browser().get("/sign-in").text
    assert "If you do not have an account" in html
    assert "Ask your service's administrator" in html
    assert "sees a link in the terminal" in html
