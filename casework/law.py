"""The law as data: clock citations and the reg 44 time limits, read from ``config/law.toml``.

Citations change when the law or our reading of it changes, and a legal reviewer
should be able to correct one without reading code; so they live in TOML beside
their sources, and this loader only checks that every entry can be traced back to
where it was read. It imports nothing from casework, so any module (deadlines,
letters, pages) can use it without an import cycle.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config" / "law.toml"

Checked = Literal["legislation text", "secondary source", "part only"]
CHECKED_VALUES: tuple[str, ...] = ("legislation text", "secondary source", "part only")


class LawDataError(ValueError):
    """``law.toml`` is missing something a citation needs; the message names the entry."""


@dataclass(frozen=True, slots=True)
class ClockLaw:
    """The rule behind one clock, with where it was read."""

    key: str
    citation: str
    rule: str
    source: str
    checked: Checked
    note: str = ""


@dataclass(frozen=True, slots=True)
class Reg44Limit:
    """A reg 44(2) limit a mediation agreement inherits under reg 42(2)."""

    key: str
    description: str
    weeks: int
    counts_from: str
    immediately: bool
    citation: str
    source: str
    checked: Checked


@dataclass(frozen=True, slots=True)
class Law:
    clocks: Mapping[str, ClockLaw]
    reg44: Mapping[str, Reg44Limit]

    def clock(self, key: str) -> ClockLaw:
        try:
            return self.clocks[key]
        except KeyError:
            raise LawDataError(f"law.toml has no clock {key!r}") from None

    def limit(self, key: str) -> Reg44Limit:
        try:
            return self.reg44[key]
        except KeyError:
            known = ", ".join(self.reg44)
            raise LawDataError(f"law.toml has no reg 44 limit {key!r}; known: {known}") from None


def _text(entry: Mapping[str, Any], name: str, where: str, *, optional: bool = False) -> str:
    value = entry.get(name, "" if optional else None)
    if not isinstance(value, str) or (not optional and not value.strip()):
        raise LawDataError(f"{where}: {name} must be a non-empty string")
    return value.strip()


def _checked(entry: Mapping[str, Any], where: str) -> Checked:
    value = _text(entry, "checked", where)
    if value not in CHECKED_VALUES:
        raise LawDataError(f"{where}: checked must be one of {', '.join(CHECKED_VALUES)}")
    return value  # type: ignore[return-value]


def _source(entry: Mapping[str, Any], where: str) -> str:
    source = _text(entry, "source", where)
    if not source.startswith(("http://", "https://")):
        raise LawDataError(f"{where}: source must be the address the text was read at")
    return source


def parse_law(raw: Mapping[str, Any]) -> Law:
    """Build :class:`Law` from parsed TOML, refusing duplicates and untraceable entries."""
    clocks: dict[str, ClockLaw] = {}
    for i, entry in enumerate(raw.get("clock", [])):
        where = f"clock #{i + 1}"
        key = _text(entry, "key", where)
        where = f"clock {key!r}"
        if key in clocks:
            raise LawDataError(f"{where} appears twice")
        clocks[key] = ClockLaw(
            key=key,
            citation=_text(entry, "citation", where),
            rule=_text(entry, "rule", where),
            source=_source(entry, where),
            checked=_checked(entry, where),
            note=_text(entry, "note", where, optional=True),
        )
    limits: dict[str, Reg44Limit] = {}
    for i, entry in enumerate(raw.get("reg44", [])):
        where = f"reg44 #{i + 1}"
        key = _text(entry, "key", where)
        where = f"reg44 {key!r}"
        if key in limits:
            raise LawDataError(f"{where} appears twice")
        weeks = entry.get("weeks")
        if not isinstance(weeks, int) or isinstance(weeks, bool) or weeks < 0:
            raise LawDataError(f"{where}: weeks must be a whole number of weeks, 0 or more")
        immediately = entry.get("immediately", False)
        if not isinstance(immediately, bool) or (immediately and weeks != 0):
            raise LawDataError(f"{where}: immediately is true only with weeks = 0")
        limits[key] = Reg44Limit(
            key=key,
            description=_text(entry, "description", where),
            weeks=weeks,
            counts_from=_text(entry, "counts_from", where),
            immediately=immediately,
            citation=_text(entry, "citation", where),
            source=_source(entry, where),
            checked=_checked(entry, where),
        )
    return Law(clocks=MappingProxyType(clocks), reg44=MappingProxyType(limits))


def load_law(path: Path | None = None) -> Law:
    """Read and check ``law.toml`` (the project's own unless ``path`` is given).

    The project's own file is read once per process: every case page and agreed action
    asks for it, and it changes only with a release.
    """
    if path is None:
        return _project_law()
    with path.open("rb") as fh:
        return parse_law(tomllib.load(fh))


@lru_cache(maxsize=1)
def _project_law() -> Law:
    with DEFAULT_PATH.open("rb") as fh:
        return parse_law(tomllib.load(fh))
