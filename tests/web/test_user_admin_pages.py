"""The administrator's user pages and two-factor sign-in, through the web door.

Every admin action is tried as the admin (it happens, in words, audited) and as
someone else (refused, nothing changes). Signing in asks for a code after the
password when two-factor sign-in is on; managers and admins must enrol before any
page; a recovery code works once; a disabled person's open session stops at their
next request.
"""

from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import select
from sqlmodel import col

from casework import auth
from casework.models import ApiToken, StaffEvent, User, UserSession
from tests.web.conftest import (
    CAST,
    START,
    Browser,
    Web,
    csrf_in,
    form_sign_in,
    mfa_secret,
    password_hash,
)


def _user(web: Web, who: str) -> User:
    with web.session() as s:
        user = s.get(User, web.users[who].id)
        assert user is not None
        return user


def _events(web: Web, who: str) -> list[str]:
    with web.session() as s:
        return list(
            s.execute(
                select(col(StaffEvent.event))
                .where(col(StaffEvent.subject_id) == web.users[who].id)
                .order_by(col(StaffEvent.id))
            ).scalars()
        )


def _new_user(web: Web, email: str, role: str) -> User:
    """Someone not yet enrolled (the cast's managers and admins are)."""
    with web.session() as s:
        user = User(
            email=email,
            name=email.split("@")[0],
            role=role,
            password_hash=password_hash(),
            created_at=START,
        )
        s.add(user)
        s.commit()
        return user


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# --- The pages, as the admin --------------------------------------------------------------


def test_the_users_list_shows_each_person_in_words(web: Web) -> None:
    admin = web.browser("admin")
    page = admin.get("/admin/users")
    assert page.status_code == 200
    text = _text(page.text)
    assert '<a class="govuk-service-navigation__link" href="/admin/users"' in page.text
    for key in CAST:
        assert CAST[key][0] in text
    assert "Administrator" in text and "Provider staff, Solution Talk" in text
    assert "Two-factor sign-in On" in text and "Two-factor sign-in Off" in text
    assert "Last signed in Never" in text
    assert "provider_id" not in page.text and "admin</dd>" not in page.text


def test_the_header_links_users_for_admins_only(web: Web) -> None:
    for who in ("adviser", "manager"):
        assert 'href="/admin/users"' not in web.browser(who).get("/").text


@pytest.mark.parametrize("who", ["adviser", "manager", "provider_a"])
def test_everyone_but_an_admin_is_refused_and_nothing_changes(web: Web, who: str) -> None:
    browser = web.browser(who)
    target = web.users["adviser"].id
    for url in ("/admin/users", f"/admin/users/{target}", f"/admin/users/{target}/disable"):
        assert browser.get(url).status_code == 403, url
    for url in (
        f"/admin/users/{target}/disable",
        f"/admin/users/{target}/role",
        f"/admin/users/{target}/tokens",
        f"/admin/users/{target}/reset-sign-in",
        "/admin/users/new",
    ):
        response = browser.post(url, {"role": "admin", "token_name": "x", "email": "x@y.org"})
        assert response.status_code == 403, url
        assert "Only an administrator" in response.text
    adviser = _user(web, "adviser")
    assert adviser.active and adviser.role == "adviser"
    with web.session() as s:
        assert s.execute(select(StaffEvent)).first() is None
        assert s.execute(select(ApiToken)).first() is None


def test_an_admin_adds_a_user_and_sees_their_one_time_link_once(web: Web) -> None:
    admin = web.browser("admin")
    form = admin.get("/admin/users/new")
    assert form.status_code == 200
    refused = admin.post("/admin/users/new", {"email": "not-an-email", "role": "adviser"})
    assert refused.status_code == 422
    assert "<title>Error: Add a user" in refused.text
    assert "govuk-error-summary" in refused.text and 'href="#email"' in refused.text
    assert 'value="not-an-email"' in refused.text  # what was typed is kept
    no_provider = admin.post(
        "/admin/users/new", {"email": "p@collis.example.org", "role": "provider"}
    )
    assert no_provider.status_code == 422 and "Choose the provider" in no_provider.text

    added = admin.post(
        "/admin/users/new",
        {"email": "sam.new@ias.example.org", "name": "Sam New", "role": "adviser"},
    )
    assert added.status_code == 200
    link = re.search(r"http://[^<\s]+/set-password/[^<\s]+", added.text)
    assert link, added.text
    assert "User added" in added.text and "Sam New" in added.text
    token = link.group(0).rsplit("/", 1)[1]
    assert web.browser().get(f"/set-password/{token}").status_code == 200
    with web.session() as s:
        user = s.execute(
            select(User).where(col(User.email) == "sam.new@ias.example.org")
        ).scalar_one()
        page = admin.get(f"/admin/users/{user.id}")
    assert token not in page.text  # shown once
    assert "Added" in _text(page.text) and "by ada.admin@ias.example.org" in _text(page.text)


def test_disabling_asks_first_then_ends_their_open_session_at_the_next_request(web: Web) -> None:
    adviser = web.browser("adviser")
    assert adviser.get("/").status_code == 200
    admin = web.browser("admin")
    target = web.users["adviser"].id
    confirm = admin.get(f"/admin/users/{target}/disable")
    assert confirm.status_code == 200
    assert "Disable adviser?" in confirm.text and "govuk-warning-text" in confirm.text
    assert "signed out everywhere" in confirm.text
    assert _user(web, "adviser").active  # asking changes nothing

    done = admin.post(f"/admin/users/{target}/disable")
    assert done.status_code == 303 and done.headers["location"].endswith("?done=disabled")
    assert "User disabled" in admin.get(done.headers["location"]).text

    after = adviser.get("/")
    assert after.status_code == 303 and after.headers["location"].startswith("/sign-in")
    assert not _user(web, "adviser").active

    enabled = admin.post(f"/admin/users/{target}/enable")
    assert enabled.headers["location"].endswith("?done=enabled")
    assert _events(web, "adviser") == ["user_disabled", "user_enabled"]


def test_an_admin_cannot_disable_themselves(web: Web) -> None:
    admin = web.browser("admin")
    me = web.users["admin"].id
    assert f"/admin/users/{me}/disable" not in admin.get(f"/admin/users/{me}").text
    refused = admin.post(f"/admin/users/{me}/disable")
    assert refused.status_code == 403 and "cannot disable yourself" in refused.text
    assert _user(web, "admin").active


def test_an_admin_changes_a_role_and_the_person_signs_in_again(web: Web) -> None:
    adviser = web.browser("adviser")
    admin = web.browser("admin")
    target = web.users["adviser"].id
    missing = admin.post(f"/admin/users/{target}/role", {"role": "provider"})
    assert missing.status_code == 422 and "Choose the provider" in missing.text
    assert "<title>Error: " in missing.text
    moved = admin.post(f"/admin/users/{target}/role", {"role": "commissioner"})
    assert moved.headers["location"].endswith("?done=role")
    assert _user(web, "adviser").role == "commissioner"
    assert adviser.get("/").status_code == 303  # signed out: the new role applies
    same = admin.post(f"/admin/users/{target}/role", {"role": "commissioner"})
    assert same.headers["location"].endswith("?done=role_same")
    assert _events(web, "adviser") == ["role_changed"]


def test_an_admin_resets_a_sign_in_and_gets_a_new_link(web: Web) -> None:
    adviser = web.browser("adviser")
    admin = web.browser("admin")
    target = web.users["adviser"].id
    page = admin.post(f"/admin/users/{target}/reset-sign-in")
    assert page.status_code == 200 and "Sign-in reset" in page.text
    assert re.search(r"/set-password/[^<\s]+", page.text)
    assert adviser.get("/").status_code == 303
    assert _user(web, "adviser").password_hash == ""
    assert _events(web, "adviser") == ["sign_in_reset"]


def test_an_admin_issues_a_token_shown_once_and_revokes_it(web: Web) -> None:
    admin = web.browser("admin")
    target = web.users["adviser"].id
    blank = admin.post(f"/admin/users/{target}/tokens", {"token_name": ""})
    assert blank.status_code == 422 and "Enter what the token is for" in blank.text
    issued = admin.post(f"/admin/users/{target}/tokens", {"token_name": "LA case system"})
    assert issued.status_code == 200
    found = re.search(r"<code>(cw_[^<]+)</code>", issued.text)
    assert found, issued.text
    value = found.group(1)
    api = web.browser().client
    assert api.get("/api/v1/cases", headers={"Authorization": f"Bearer {value}"}).status_code == 200
    page = admin.get(f"/admin/users/{target}")
    assert value not in page.text and "LA case system" in page.text
    assert "Last used" in page.text

    with web.session() as s:
        token_id = s.execute(select(col(ApiToken.id))).scalar_one()
    revoked = admin.post(f"/admin/users/{target}/tokens/{token_id}/revoke")
    assert revoked.headers["location"].endswith("?done=revoked#tokens")
    assert api.get("/api/v1/cases", headers={"Authorization": f"Bearer {value}"}).status_code == 401
    assert "Revoked" in admin.get(f"/admin/users/{target}").text
    assert _events(web, "adviser") == ["token_issued", "token_revoked"]


def test_an_admin_sees_a_persons_sessions_in_words_and_ends_them(web: Web) -> None:
    first = web.browser("adviser")
    second = web.browser("adviser")
    admin = web.browser("admin")
    target = web.users["adviser"].id
    page = admin.get(f"/admin/users/{target}")
    text = _text(page.text)
    assert text.count("End session") == 2
    assert "Started Thursday 12 November 2026 at 10:00am" in text
    with web.session() as s:
        rows = (
            s.execute(
                select(UserSession)
                .where(col(UserSession.user_id) == target)
                .order_by(col(UserSession.id))
            )
            .scalars()
            .all()
        )
    ended = admin.post(f"/admin/users/{target}/sessions/{rows[0].id}/end")
    assert ended.headers["location"].endswith("?done=session#sessions")
    assert first.get("/").status_code == 303 and second.get("/").status_code == 200
    admin.post(f"/admin/users/{target}/sessions/end-all")
    assert second.get("/").status_code == 303
    assert "Not signed in anywhere" in admin.get(f"/admin/users/{target}").text
    assert _events(web, "adviser") == ["session_ended", "sessions_ended"]


def test_an_admin_resets_two_factor_and_the_manager_must_enrol_again(web: Web) -> None:
    manager = web.browser("manager")
    admin = web.browser("admin")
    target = web.users["manager"].id
    done = admin.post(f"/admin/users/{target}/reset-two-factor")
    assert done.headers["location"].endswith("?done=mfa")
    assert not _user(web, "manager").mfa_on
    assert manager.get("/").status_code == 303  # signed out
    again = web.browser("manager")
    assert again.get("/manager").headers["location"] == "/account/two-factor"
    assert _events(web, "manager") == ["mfa_reset"]


# --- Signing in with a code --------------------------------------------------------------------


def test_a_manager_signs_in_with_a_code_after_the_password(web: Web) -> None:
    browser = web.browser()
    page = browser.get("/sign-in")
    email = CAST["manager"][0]
    first = browser.post(
        "/sign-in",
        {"email": email, "password": "correct horse battery staple"},
        csrf=csrf_in(page.text),
    )
    assert first.status_code == 303 and first.headers["location"] == "/sign-in/code"
    assert browser.get("/manager").status_code == 303  # the password alone is no session

    step = browser.get("/sign-in/code")
    assert step.status_code == 200 and 'autocomplete="one-time-code"' in step.text
    wrong = browser.post("/sign-in/code", {"code": "000000"}, csrf=csrf_in(step.text))
    assert wrong.status_code == 401 and "<title>Error: Enter your sign-in code" in wrong.text
    assert "Enter a correct code" in wrong.text
    code = pyotp.TOTP(mfa_secret(email)).at(web.clock.now)
    done = browser.post("/sign-in/code", {"code": code}, csrf=csrf_in(step.text))
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert browser.get("/manager").status_code == 200
    assert _user(web, "manager").last_login_at == web.clock.now


def test_the_code_step_without_a_right_password_goes_back_to_sign_in(web: Web) -> None:
    browser = web.browser()
    assert browser.get("/sign-in/code").headers["location"].startswith("/sign-in?expired=1")
    browser.client.cookies.set("casework_mfa_pending", "forged", path="/sign-in")
    page = browser.get("/sign-in")
    response = browser.post("/sign-in/code", {"code": "123456"}, csrf=csrf_in(page.text))
    assert response.status_code == 303 and response.headers["location"].startswith("/sign-in?")


def test_a_recovery_code_signs_in_once(web: Web) -> None:
    with web.session() as s:
        manager = s.get(User, web.users["manager"].id)
        assert manager is not None
        codes = auth.new_recovery_codes(s, manager, now=START)
        s.commit()
    email = CAST["manager"][0]

    def with_recovery(code: str) -> tuple[Browser, int, str]:
        browser = web.browser()
        page = browser.get("/sign-in")
        browser.post(
            "/sign-in",
            {"email": email, "password": "correct horse battery staple"},
            csrf=csrf_in(page.text),
        )
        step = browser.get("/sign-in/code")
        response = browser.post("/sign-in/code", {"code": code}, csrf=csrf_in(step.text))
        return browser, response.status_code, response.headers.get("location", "")

    browser, status, location = with_recovery(codes[0])
    assert status == 303 and location.startswith("/account/two-factor")
    page = browser.get(location)
    assert (
        "You signed in with a recovery code" in page.text and "9 unused recovery codes" in page.text
    )
    assert with_recovery(codes[0])[1] == 401
    assert _events(web, "manager") == ["recovery_code_used"]


# --- Enrolment and who must ----------------------------------------------------------------------


def test_a_new_manager_must_enrol_before_any_page(web: Web) -> None:
    morgan = _new_user(web, "new.manager@ias.example.org", "manager")
    browser = web.browser()
    response = form_sign_in(web, browser, morgan.email)
    assert response.headers["location"] == "/account/two-factor"
    for url in ("/", "/manager", "/reports", "/cases/new"):
        assert browser.get(url).headers.get("location") == "/account/two-factor", url

    page = browser.get("/account/two-factor")
    assert page.status_code == 200
    assert '<svg role="img" aria-label="QR code' in page.text
    secret = re.search(r'id="secret"><code>([A-Z2-7 ]+)</code>', page.text)
    assert secret, page.text
    plain = secret.group(1).replace(" ", "")
    assert plain not in (_user_by_email(web, morgan.email).totp_secret or "")

    wrong = browser.post("/account/two-factor", {"code": "000000"}, csrf=csrf_in(page.text))
    assert wrong.status_code == 422 and "<title>Error: Set up two-factor sign-in" in wrong.text
    assert plain in wrong.text.replace(" ", "")  # the same secret: the app already scanned
    right = browser.post(
        "/account/two-factor",
        {"code": pyotp.TOTP(plain).at(web.clock.now)},
        csrf=csrf_in(page.text),
    )
    assert right.status_code == 200 and "They will not be shown again" in right.text
    codes = re.findall(r"<li><code>([A-Z2-7]{5}-[A-Z2-7]{5})</code></li>", right.text)
    assert len(codes) == 10
    assert browser.get("/manager").status_code == 200
    assert "two-factor sign-in is on" in browser.get("/account/two-factor").text.lower()


def _user_by_email(web: Web, email: str) -> User:
    with web.session() as s:
        return s.execute(select(User).where(col(User.email) == email)).scalar_one()


def test_advisers_need_no_second_factor_unless_the_service_says_so(web: Web) -> None:
    browser = web.browser()
    assert form_sign_in(web, browser, CAST["adviser"][0]).headers["location"] == "/"
    assert browser.get("/").status_code == 200

    web.app.state.settings = web.settings.model_copy(update={"mfa_also_required_for": ["adviser"]})
    assert browser.get("/").headers["location"] == "/account/two-factor"
    assert browser.get("/account/two-factor").status_code == 200
