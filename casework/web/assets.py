"""The GOV.UK Frontend assets: where they live, and installing them on first run.

``govuk-frontend`` comes from the npm registry (``casework/web/package.json``,
pinned, with its lock file). Its ``dist/govuk`` folder is served under ``/assets``
(``/assets/govuk/...`` for the CSS and JS, ``/assets/images/...`` for the icons the
CSS refers to). The pages work without it, just unstyled, so a missing install is
a clear warning, never a crash; :func:`ensure_assets` runs ``npm ci`` once when the
files are missing so the README's one-line run command gives a styled service.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
GOVUK_DIST = WEB_DIR / "node_modules" / "govuk-frontend" / "dist" / "govuk"
GOVUK_CSS = GOVUK_DIST / "govuk-frontend.min.css"
STATIC_DIR = WEB_DIR / "static"
# The API's documentation page, served from the app (never a CDN) so it works offline.
SWAGGER_DIST = WEB_DIR / "node_modules" / "swagger-ui-dist"


def assets_present() -> bool:
    return GOVUK_CSS.is_file()


def ensure_assets(*, quiet: bool = False) -> str | None:
    """Install govuk-frontend with npm when it is missing; return a warning, or None if fine.

    ``npm ci`` installs exactly the locked version (falling back to ``npm install``
    when there is no lock file). Nothing is downloaded except from the npm registry.
    """
    if assets_present():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return (
            "GOV.UK Frontend assets are missing and npm is not installed, so pages will be"
            " unstyled. Install Node.js and npm (e.g. `apt-get install npm`), then run"
            f" `npm ci --prefix {WEB_DIR}`."
        )
    verb = "ci" if (WEB_DIR / "package-lock.json").is_file() else "install"
    command = [npm, verb, "--prefix", str(WEB_DIR), "--no-audit", "--no-fund", "--silent"]
    log.info("installing GOV.UK Frontend: %s", " ".join(command))
    try:
        subprocess.run(command, check=True, capture_output=quiet, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return (
            f"Could not install GOV.UK Frontend with `npm {verb} --prefix {WEB_DIR}` ({exc});"
            " pages will be unstyled until it succeeds."
        )
    if not assets_present():
        return f"npm finished but {GOVUK_CSS} is still missing; pages will be unstyled."
    return None
