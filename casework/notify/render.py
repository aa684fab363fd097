"""Rendering notices from Jinja2 templates: pure, no IO beyond reading the templates.

Templates live beside this module as ``<name>.sms.j2`` (the SMS text) and
``<name>.email.j2`` (first line ``Subject: ...``, a blank line, then the body).
Undefined variables are errors, not blanks: a reminder that silently says "your
appeal must reach the Tribunal by ." is worse than one that is not sent.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, meta

TEMPLATE_DIR = Path(__file__).parent / "templates"

# GSM 03.38 basic character set (plus the extension table, which costs two septets).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€")


class RenderError(Exception):
    """A template is missing or needs data the notice does not carry (permanent)."""


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        undefined=StrictUndefined,
        autoescape=False,  # plain-text SMS and email bodies, never HTML
        keep_trailing_newline=False,
        trim_blocks=True,
    )


# What a notice of a template may be rendered as besides its own channel: a letter by
# post prints the email text, and a failed notice's context is carried into the
# adviser's "could not deliver" escalation, which renders it again.
_ALSO_RENDERED_WITH = ("escalation_delivery_failed.email.j2",)


def _names_in(name: str, seen: set[str]) -> frozenset[str] | None:
    """The context names ``name`` (and every template it pulls in) reads; None: unknowable."""
    if name in seen:
        return frozenset()
    seen.add(name)
    env = _environment()
    assert env.loader is not None
    source = env.loader.get_source(env, name)[0]
    tree = env.parse(source)
    names = set(meta.find_undeclared_variables(tree))
    for ref in meta.find_referenced_templates(tree):
        if ref is None:  # a computed include: cannot know what it reads
            return None
        more = _names_in(ref, seen)
        if more is None:
            return None
        names |= more
    return frozenset(names)


@lru_cache(maxsize=256)
def template_keys(template: str) -> frozenset[str] | None:
    """Every context key any rendering of ``template``'s notices can read, or None.

    Why: the sweep stores a notice's context as JSON, and copying the whole case into
    each row cost most of its write time. A notice needs only what its templates read
    (every channel, since a letter by post prints the email text and dispatch can fall
    back from one channel to another) plus what a delivery-failure escalation renders
    from it. None (keep everything) when a template pulls in a template by a computed
    name. Cached per process: templates change only with a deploy.
    """
    names: set[str] = set()
    files = [f"{template}.{ch}.j2" for ch in ("email", "sms")]
    files = [f for f in files if (TEMPLATE_DIR / f).exists()]
    if not files:
        return None
    for name in (*files, *_ALSO_RENDERED_WITH):
        found = _names_in(name, set())
        if found is None:
            return None
        names |= found
    return frozenset(names)


def render(template: str, channel: str, context: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) for one notice; subject is empty for SMS."""
    try:
        text = _environment().get_template(f"{template}.{channel}.j2").render(**context)
    except TemplateNotFound as exc:
        raise RenderError(f"no {channel} template named {template!r}") from exc
    except Exception as exc:  # StrictUndefined and template errors
        raise RenderError(f"template {template}.{channel} could not be rendered: {exc}") from exc
    if channel == "sms":
        return "", " ".join(text.split())
    first, _, rest = text.partition("\n")
    if not first.startswith("Subject: "):
        raise RenderError(f"email template {template} must start with 'Subject: '")
    return first.removeprefix("Subject: ").strip(), rest.strip() + "\n"


def sms_segments(text: str) -> int:
    """How many SMS parts a text costs: GSM-7 160/153 per part, else UCS-2 70/67.

    One curly quote or non-breaking space switches the whole message to UCS-2 and
    can double the cost, which is why templates are tested against this.
    """
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text):
        septets = sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def templates_available() -> set[tuple[str, str]]:
    """(name, channel) pairs that exist, for config validation and tests."""
    out = set()
    for path in TEMPLATE_DIR.glob("*.j2"):
        name, channel, _ = path.name.rsplit(".", 2)
        out.add((name, channel))
    return out
