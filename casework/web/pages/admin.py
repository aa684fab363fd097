"""The administrator's pages: the people who sign in, their sessions and API tokens.

Each handler parses the form and calls one use case of :mod:`casework.cases.users`,
which refuses anyone but an administrator (the refusal becomes a 403 page), makes
the change in one transaction and writes the staff audit row. A one-time link or a
new API token is shown once, in the answer to the POST that made it, and never again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from casework import auth, cases
from casework.cases import users
from casework.cases.words import (
    STAFF_EVENT_WORDS,
    actor_words,
    device_words,
    moment_words,
    role_words,
)
from casework.config import Settings
from casework.models import Provider, Role
from casework.web.deps import NowDep, PageUserDep, SessionDep
from casework.web.pages.common import form_text, redirect, render
from casework.web.security import CheckedForm

router = APIRouter(include_in_schema=False, prefix="/admin/users")

ROLE_CHOICES = [(role.value, role_words(role.value)) for role in Role]

DONE: dict[str, str] = {
    "disabled": "User disabled. They are signed out everywhere and their API tokens are revoked.",
    "enabled": "User re-enabled. They can sign in again.",
    "role": "Role changed. They are signed out everywhere and sign in again with the new role.",
    "role_same": "They already have that role: nothing changed.",
    "revoked": "API token revoked. It stops working at its next request.",
    "session": "Session ended.",
    "sessions": "Signed out everywhere.",
    "mfa": "Two-factor sign-in reset. If it is required of them, they set it up again when"
    " they next sign in.",
}

_env_globals: dict[str, Any] = {
    "role_words": role_words,
    "moment_words": moment_words,
    "device_words": device_words,
    "actor_words": actor_words,
    "staff_event_words": STAFF_EVENT_WORDS,
}


def _actor(signed_in: tuple[Any, Any]) -> cases.Actor:
    return auth.actor_for(signed_in[0], "web")


def _providers(request: Request) -> list[tuple[str, str]]:
    settings: Settings = request.app.state.settings
    return [(p.code, p.name) for p in settings.providers]


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    return render(request, template, {**_env_globals, **context}, status_code=status)


@router.get("")
def users_list(
    request: Request, session: SessionDep, now: NowDep, signed_in: PageUserDep
) -> Response:
    people = users.list_users(session, actor=_actor(signed_in), now=now)
    return _page(request, "admin/users.html", {"page_title": "Users", "people": people})


def _user_page(
    request: Request,
    session: Any,
    now: Any,
    signed_in: tuple[Any, Any],
    user_id: int,
    *,
    done: str = "",
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    shown_once: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    detail = users.user_detail(session, user_id, actor=_actor(signed_in), now=now)
    provider_code = ""
    if detail.user.provider_id:
        provider = session.get(Provider, detail.user.provider_id)
        provider_code = provider.code if provider else ""
    return _page(
        request,
        "admin/user.html",
        {
            "page_title": f"User {detail.user.email}",
            "detail": detail,
            "done_message": DONE.get(done, ""),
            "errors": errors or {},
            "values": values or {"role": detail.user.role, "provider": provider_code},
            "roles": ROLE_CHOICES,
            "providers": _providers(request),
            "shown_once": shown_once,
            "is_self": detail.user.id == signed_in[0].id,
        },
        status,
    )


@router.get("/new")
def user_new_get(
    request: Request, session: SessionDep, now: NowDep, signed_in: PageUserDep
) -> Response:
    users.require_admin(_actor(signed_in))
    return _page(
        request,
        "admin/user_new.html",
        {
            "page_title": "Add a user",
            "values": {},
            "roles": ROLE_CHOICES,
            "providers": _providers(request),
        },
    )


@router.post("/new")
def user_new_post(
    request: Request, session: SessionDep, now: NowDep, signed_in: PageUserDep, form: CheckedForm
) -> Response:
    settings: Settings = request.app.state.settings
    values = {name: form_text(form, name) for name in ("email", "name", "role", "provider")}
    try:
        invited = users.add_user(
            session,
            settings,
            email=values["email"],
            name=values["name"],
            role=values["role"],
            provider=values["provider"] if values["role"] == Role.provider else None,
            actor=_actor(signed_in),
            now=now,
        )
    except (cases.ValidationFailed, cases.Conflict) as exc:
        field = getattr(exc, "field", None) or "email"
        return _page(
            request,
            "admin/user_new.html",
            {
                "page_title": "Add a user",
                "values": values,
                "roles": ROLE_CHOICES,
                "providers": _providers(request),
                "errors": {field: str(exc)},
            },
            422,
        )
    return _user_page(
        request,
        session,
        now,
        signed_in,
        invited.user.id or 0,
        shown_once={
            "title": "User added",
            "what": "Send this one-time link to them so they can choose a password."
            " It works once, for 7 days.",
            "value": invited.link,
        },
    )


@router.get("/{user_id}")
def user_get(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    user_id: int,
    done: str = "",
) -> Response:
    return _user_page(request, session, now, signed_in, user_id, done=done)


@router.post("/{user_id}/role")
def user_role_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    user_id: int,
) -> Response:
    values = {"role": form_text(form, "role"), "provider": form_text(form, "provider")}
    try:
        changed = users.change_role(
            session,
            user_id,
            values["role"],
            provider=values["provider"] if values["role"] == Role.provider else None,
            actor=_actor(signed_in),
            now=now,
        )
    except cases.ValidationFailed as exc:
        return _user_page(
            request,
            session,
            now,
            signed_in,
            user_id,
            errors={exc.field or "role": str(exc)},
            values=values,
            status=422,
        )
    return redirect(f"/admin/users/{user_id}?done={'role' if changed else 'role_same'}")


@router.post("/{user_id}/reset-sign-in")
def user_reset_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    user_id: int,
) -> Response:
    settings: Settings = request.app.state.settings
    invited = users.reset_sign_in(session, settings, user_id, actor=_actor(signed_in), now=now)
    return _user_page(
        request,
        session,
        now,
        signed_in,
        user_id,
        shown_once={
            "title": "Sign-in reset",
            "what": "Their old password no longer works and they are signed out everywhere."
            " Send this one-time link to them so they can choose a new password."
            " It works once, for 7 days.",
            "value": invited.link,
        },
    )


@router.get("/{user_id}/disable")
def user_disable_get(
    request: Request, session: SessionDep, now: NowDep, signed_in: PageUserDep, user_id: int
) -> Response:
    detail = users.user_detail(session, user_id, actor=_actor(signed_in), now=now)
    return _page(
        request,
        "admin/disable.html",
        {"page_title": f"Disable {detail.user.email}", "detail": detail},
    )


@router.post("/{user_id}/disable")
def user_disable_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    user_id: int,
) -> Response:
    users.disable_user(session, user_id, actor=_actor(signed_in), now=now)
    return redirect(f"/admin/users/{user_id}?done=disabled")


@router.post("/{user_id}/enable")
def user_enable_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    user_id: int,
) -> Response:
    users.enable_user(session, user_id, actor=_actor(signed_in), now=now)
    return redirect(f"/admin/users/{user_id}?done=enabled")


@router.post("/{user_id}/reset-two-factor")
def user_reset_mfa_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    user_id: int,
) -> Response:
    users.reset_mfa(session, user_id, actor=_actor(signed_in), now=now)
    return redirect(f"/admin/users/{user_id}?done=mfa")


@router.post("/{user_id}/tokens")
def user_token_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    user_id: int,
) -> Response:
    name = form_text(form, "token_name")
    try:
        issued = users.issue_api_token(
            session, user_id, name=name, actor=_actor(signed_in), now=now
        )
    except cases.ValidationFailed as exc:
        return _user_page(
            request,
            session,
            now,
            signed_in,
            user_id,
            errors={exc.field or "token_name": str(exc)},
            values={"token_name": name},
            status=422,
        )
    return _user_page(
        request,
        session,
        now,
        signed_in,
        user_id,
        shown_once={
            "title": "API token issued",
            "what": f"Copy the token '{issued.token.name}' now: it is not kept and cannot be"
            " shown again. The system using it sends it as 'Authorization: Bearer' and the"
            " token.",
            "value": issued.value,
        },
    )


@router.post("/{user_id}/tokens/{token_id}/revoke")
def user_token_revoke_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    user_id: int,
    token_id: int,
) -> Response:
    users.revoke_api_token(session, user_id, token_id, actor=_actor(signed_in), now=now)
    return redirect(f"/admin/users/{user_id}?done=revoked#tokens")


@router.post("/{user_id}/sessions/{session_id}/end")
def user_session_end_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    user_id: int,
    session_id: int,
) -> Response:
    users.end_session(session, user_id, session_id, actor=_actor(signed_in), now=now)
    return redirect(f"/admin/users/{user_id}?done=session#sessions")


@router.post("/{user_id}/sessions/end-all")
def user_sessions_end_post(
    request: Request,
    session: SessionDep,
    now: NowDep,
    signed_in: PageUserDep,
    form: CheckedForm,
    user_id: int,
) -> Response:
    users.end_all_sessions(session, user_id, actor=_actor(signed_in), now=now)
    return redirect(f"/admin/users/{user_id}?done=sessions#sessions")
