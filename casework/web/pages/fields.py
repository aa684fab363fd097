"""The fields of each step's form, drawn once per step and kept.

Why: the case page offers every step allowed now, each a form of a few fields, and
drawing them through the field macros was most of the page's server time (about 30
macro calls a page). A form shown empty is the same HTML for every case (its CSRF
token and case version sit outside the fields), so it is drawn once per step by the
very macros that draw a refused form again, and the page pastes it in: the markup
and its accessibility stay exactly the macros'.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from jinja2 import Environment
from markupsafe import Markup

from casework.cases.fields import EventField

_SOURCE = '{% from "macros.html" import event_fields %}{{ event_fields(event, fields) }}'

_lock = threading.Lock()
_kept: dict[tuple[object, ...], Markup] = {}


def _keep(env: Environment, key: tuple[object, ...], draw: Callable[[], str]) -> Markup:
    """``draw()`` on first use of ``key``, kept after; never kept while templates are
    re-read from disk (development), so an edited macro shows at once."""
    if env.auto_reload:
        return Markup(draw())
    drawn = _kept.get(key)
    if drawn is None:
        drawn = Markup(draw())
        with _lock:
            _kept[key] = drawn
    return drawn


def draw_fields(env: Environment, event: str, fields: tuple[EventField, ...]) -> Markup:
    """The empty form fields of step ``event``, drawn on first use and kept after.

    Kept per (environment, step, field declarations): the same step with other fields
    is drawn on its own.
    """
    declared = tuple(fields)
    return _keep(
        env,
        (env, "step", event, declared),
        lambda: env.from_string(_SOURCE).render(event=event, fields=declared),
    )


def draw_kept(env: Environment, template: str, macro: str) -> Markup:
    """What ``macro`` of ``template`` draws with no arguments (a form's fields, empty).

    Why: the case page's own forms (a note, a call, a message, the owner) are the same
    on every case until one is sent back with its errors; drawn once, they cost nothing
    after.
    """
    return _keep(
        env,
        (env, "macro", template, macro),
        lambda: getattr(env.get_template(template).module, macro)(),
    )
