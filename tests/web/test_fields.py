"""Each step's form fields, drawn once and kept (casework.web.pages.fields)."""

from __future__ import annotations

import re

import pytest
from jinja2 import Environment, FileSystemLoader, select_autoescape

from casework.cases.effects import EVENTS
from casework.cases.fields import EventField
from casework.web import assets
from casework.web.pages import common
from casework.web.pages.fields import draw_fields, draw_kept


def _env(*, reload: bool) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(assets.WEB_DIR / "templates")),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=reload,
    )
    env.globals.update(common._env.globals)
    return env


STEPS = list(
    dict.fromkeys((name, spec.fields) for (_kind, name), spec in EVENTS.items() if spec.fields)
)


@pytest.mark.parametrize(
    ("event", "fields"), STEPS, ids=[f"{e}-{i}" for i, (e, _) in enumerate(STEPS)]
)
def test_every_field_of_every_step_has_its_label_and_hint_tied_to_it(
    event: str, fields: tuple[EventField, ...]
) -> None:
    html = str(draw_fields(_env(reload=False), event, fields))
    ids = set(re.findall(r' id="([^"]+)"', html))
    for f in fields:
        fid = f"{event}-{f.name}"
        assert fid in ids or f"{fid}-day" in ids, f.name
        assert f'name="{f.name}' in html
    for target in re.findall(r' for="([^"]+)"', html):
        assert target in ids
    for described in re.findall(r'aria-describedby="([^"]+)"', html):
        assert set(described.split()) <= ids
    assert "govuk-error-message" not in html  # drawn empty: no one has typed anything yet


def test_a_step_is_drawn_once_and_kept() -> None:
    env = _env(reload=False)
    event, fields = STEPS[0]
    first = draw_fields(env, event, fields)
    assert draw_fields(env, event, fields) is first
    other = draw_fields(env, event, (*fields[:1], EventField("extra_words", "text", "Extra words")))
    assert other is not first and "extra_words" in other and "extra_words" not in first


def test_with_templates_reread_nothing_is_kept() -> None:
    env = _env(reload=True)
    event, fields = STEPS[0]
    assert draw_fields(env, event, fields) is not draw_fields(env, event, fields)


@pytest.mark.parametrize(
    "macro", ["note_fields", "call_fields", "message_fields", "adviser_fields"]
)
def test_the_case_pages_own_forms_are_drawn_empty_once_with_labels_tied(macro: str) -> None:
    env = _env(reload=False)
    html = str(draw_kept(env, "_case_forms.html", macro))
    assert draw_kept(env, "_case_forms.html", macro) is draw_kept(env, "_case_forms.html", macro)
    ids = set(re.findall(r' id="([^"]+)"', html))
    assert ids and set(re.findall(r' for="([^"]+)"', html)) <= ids
    assert "govuk-error-message" not in html and "checked" not in html.replace('"ias" checked', "")
