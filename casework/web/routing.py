"""Route matching that skips a router whose addresses cannot match the request's path.

FastAPI matches an included router by trying every route in it (and matches the chosen
branch twice: once to choose it, once to run it). A case page's address was tried
against every API route, every webhook and every report first: about a tenth of a
millisecond per request, on every request. Here a router first asks whether the path
can be one of its addresses at all (a fixed address, or the fixed start of one with
parameters) and answers "no match" at once when it cannot; otherwise FastAPI matches
as it always did, so which route wins never changes.

The addresses come from FastAPI's own view of the router where it is included
(prefixes applied), re-read whenever its routes change. Should a FastAPI release
change that view, the router matches every request as before, only slower.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi import routing as fastapi_routing
from starlette.routing import BaseRoute, Match, get_route_path
from starlette.types import Scope

_NO_MATCH: tuple[Match, Scope] = (Match.NONE, {})


def _addresses(included: Any) -> tuple[frozenset[str], tuple[str, ...]] | None:
    """(fixed addresses, fixed starts of addresses with parameters) of an included router,
    cached on it until its routes change; None when FastAPI does not say."""
    try:
        version = included.original_router._get_routes_version()
        cached = included.__dict__.get("_casework_addresses")
        if cached is not None and cached[0] == version:
            return cached[1]  # type: ignore[no-any-return]
        exact: set[str] = set()
        starts: set[str] = set()
        for context in included.effective_route_contexts():
            path = context.path_format
            if not isinstance(path, str):
                return None
            if "{" in path:
                starts.add(path.split("{", 1)[0])
            else:
                exact.add(path)
        found = (frozenset(exact), tuple(sorted(starts)))
        included.__dict__["_casework_addresses"] = (version, found)
        return found
    except AttributeError:
        return None


class PrefixRouter(APIRouter):
    """An :class:`APIRouter` that says "no match" without trying its routes when none
    of its addresses can match the path."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        getter = getattr(fastapi_routing, "_get_scope_included_router", None)
        included = getter(scope) if getter is not None else None
        addresses = _addresses(included) if included is not None else None
        if addresses is not None and scope["type"] == "http":
            path = get_route_path(scope)
            exact, starts = addresses
            if path not in exact and not path.startswith(starts):
                return _NO_MATCH
        return super().matches(scope)


def skip_by_prefix(app: FastAPI) -> None:
    """Make every router included in ``app`` (at any depth) a :class:`PrefixRouter`."""
    seen: set[int] = set()

    def visit(routes: list[BaseRoute]) -> None:
        for route in routes:
            router = getattr(route, "original_router", None)
            if isinstance(router, APIRouter) and id(router) not in seen:
                seen.add(id(router))
                if type(router) is APIRouter:
                    router.__class__ = PrefixRouter
                visit(router.routes)

    visit(app.router.routes)
