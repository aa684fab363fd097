"""Shared by the browser tests and ``scripts/screenshots.py``: a live server, Debian's
chromium, and axe-core.

* :func:`live_server` runs a FastAPI app under uvicorn in a background thread on a
  free 127.0.0.1 port (the socket is bound before the thread starts, so there is no
  race for the port) and stops it afterwards.
* :func:`launch_chromium` starts Debian's ``/usr/bin/chromium`` headless through
  Playwright. A browser is never downloaded (no ``playwright install``).
* :func:`axe_violations` runs axe-core on the page for the WCAG 2.0, 2.1 and 2.2 A/AA
  rules. axe is served to the page from a same-origin URL answered by Playwright
  (``context.route``), not injected inline: the app's Content-Security-Policy forbids
  inline scripts, and the browser tests keep that policy switched on (no
  ``bypass_csp``) so a CSP that broke the pages' own scripts would show.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("CASEWORK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TESTS_WEB = Path(__file__).resolve().parent
AXE_JS = TESTS_WEB / "node_modules" / "axe-core" / "axe.min.js"
# A path no app route uses; Playwright answers it with AXE_JS (see serve_axe).
AXE_URL_PATH = "/__browser-tests__/axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_browser() -> str | None:
    """Why browser tests cannot run here (playwright package or chromium missing), or None."""
    if importlib.util.find_spec("playwright") is None:
        return (
            "the playwright Python package is not installed: "
            "run `.venv/bin/pip install -e '.[test]'`"
        )
    if not CHROMIUM.is_file():
        return (
            f"Debian's chromium is not installed at {CHROMIUM}: run "
            "`apt-get update && apt-get install -y chromium` (never `playwright install`)"
        )
    return None


def ensure_axe() -> str | None:
    """Install axe-core with ``npm ci --prefix tests/web`` once; a problem, or None if fine."""
    if AXE_JS.is_file():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "axe-core is missing and npm is not installed: install npm, then run " + (
            f"`npm ci --prefix {TESTS_WEB}`"
        )
    command = [npm, "ci", "--prefix", str(TESTS_WEB), "--no-audit", "--no-fund", "--silent"]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return f"`{' '.join(command)}` failed: {exc} {detail.decode(errors='replace')[-500:]}"
    if not AXE_JS.is_file():
        return f"npm finished but {AXE_JS} is still missing"
    return None


# --- The live server --------------------------------------------------------------------


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 in a background thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="live-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the live server did not start (see the log above)")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# --- The browser ------------------------------------------------------------------------


def launch_chromium(playwright: Any) -> Any:
    """Debian's chromium, headless, through Playwright's own driver."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


def serve_axe(context: Any, base_url: str) -> None:
    """Answer AXE_URL_PATH on the app's origin with axe-core, inside this browser context."""
    context.route(
        base_url + AXE_URL_PATH,
        lambda route: route.fulfill(path=str(AXE_JS), content_type="text/javascript"),
    )


def axe_violations(page: Any, base_url: str) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.0/2.1/2.2 A and AA violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(url=base_url + AXE_URL_PATH)
    result: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const results = await axe.run(document, {
                runOnly: {type: 'tag', values: tags},
                resultTypes: ['violations'],
            });
            return results.violations.map(v => ({
                id: v.id,
                impact: v.impact,
                help: v.help,
                nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary})),
            }));
        }""",
        WCAG_TAGS,
    )
    return result


def describe_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']}")
        for node in v["nodes"][:5]:
            summary = " ".join((node.get("summary") or "").split())
            lines.append(f"    at {node['target']}: {summary[:300]}")
    return "\n".join(lines)
