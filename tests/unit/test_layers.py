"""Dependencies point downwards only (docs/layers.md): a test that fails on an upward import.

It reads every module's imports with ``ast`` (nothing is run), so a lazy import inside
a function counts the same as one at the top: both make the lower layer depend on the
upper one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "casework"

# Pure: no casework import at all. Dates and states come in as arguments.
PURE = (
    "casework.deadlines",
    "casework.states",
    "casework.law",
    "casework.contacts",
    "casework.invitations",
)
# Renders documents from templates; knows no record, rule or channel (docs/layers.md).
SELF_CONTAINED = ("casework.pdf",)
# The doors: nothing below them may import them.
DOORS = ("casework.web", "casework.cli")
# Each layer and the casework modules it must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "casework.models": (
        "casework.cases",
        "casework.notices",
        "casework.notify",
        "casework.reminders",
        *DOORS,
    ),
    # Config may ask the (pure) renderer whether a rule's template exists, nothing else.
    "casework.config": (
        "casework.cases",
        "casework.models",
        "casework.notify.dispatch",
        "casework.notify.sendgrid_email",
        "casework.notify.twilio_sms",
        *DOORS,
    ),
    "casework.cases": ("casework.notify", "casework.scheduler", "casework.demo", *DOORS),
    "casework.notices": ("casework.cases", "casework.notify.dispatch", *DOORS),
    "casework.reminders": ("casework.cases", *DOORS),
    # Channel adapters know nothing about cases.
    "casework.notify": ("casework.cases", "casework.reminders", *DOORS),
    "casework.scheduler": ("casework.cases", *DOORS),
    "casework.auth": DOORS,
    # Backups copy records; they know no use case and no web page.
    "casework.backup": ("casework.cases", "casework.notify", "casework.scheduler", *DOORS),
    # The audit chain seals and checks records; the use cases install it, not the reverse.
    "casework.audit": ("casework.cases", "casework.notify", "casework.scheduler", *DOORS),
    "casework.web": ("casework.cli",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every casework module ``path`` imports, wherever in the file the import stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from casework import deadlines`` imports the module casework.deadlines.
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name == "casework" or name.startswith("casework.")}


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_upward(module: str) -> None:
    imported = {i for i in imports_of(MODULES[module]) if i in MODULES or i == "casework"}
    if module in SELF_CONTAINED:
        assert not (imported - {"casework"}), f"{module} must import nothing of casework"
    if module in PURE:
        assert not (imported - {"casework"}), f"{module} must import nothing of casework"
    for layer, banned in FORBIDDEN.items():
        if not _within(module, layer):
            continue
        for name in imported:
            for upper in banned:
                assert not _within(name, upper), f"{module} imports {name}, a layer above it"
    if not any(_within(module, door) for door in DOORS):
        for name in imported:
            assert not any(_within(name, door) for door in DOORS), f"{module} imports {name}"


def test_the_rules_catch_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a pure module importing the web layer is reported."""
    bad = tmp_path / "deadlines.py"
    bad.write_text("def f():\n    from casework.web import app\n")
    assert "casework.web" in imports_of(bad)
    assert "casework.cases.errors" in imports_of(
        _write(tmp_path / "x.py", "from casework.cases import errors\n")
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
