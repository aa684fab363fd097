"""Regenerate the README screenshots: docs/screenshots/dashboard.png and case.png.

Runs what ``casework serve --demo`` runs (migrations, the providers, the demo users
and demo cases, then the web app under uvicorn) on a throw-away SQLite database,
signs in as the demo adviser in Debian's chromium (headless, 1280x900) and saves the
dashboard and one demo case page. The clock is pinned to a fixed moment, so the
pictures only change when the pages do.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--full-page]

Needs the ``playwright`` package (``pip install -e '.[test]'``) and ``/usr/bin/chromium``
(``apt-get install -y chromium``); a browser is never downloaded. The GOV.UK Frontend
assets are installed with npm on first use, as ``casework serve`` does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.web.browser_support

from sqlalchemy import select  # noqa: E402
from sqlmodel import col  # noqa: E402

from casework import auth, cases  # noqa: E402
from casework import deadlines as dl  # noqa: E402
from casework.config import load_settings  # noqa: E402
from casework.db import make_engine, session_scope, upgrade  # noqa: E402
from casework.demo import DEMO_DOMAIN, load_demo  # noqa: E402
from casework.models import Case, Person, User  # noqa: E402
from casework.scheduler import run_once  # noqa: E402
from casework.web.app import create_app  # noqa: E402
from tests.web.browser_support import launch_chromium, live_server, missing_browser  # noqa: E402

# A Thursday morning, London time: working hours, so the demo's notices are sent.
MOMENT = dt.datetime(2026, 11, 26, 10, 30, tzinfo=dl.LONDON).astimezone(dt.UTC)
VIEWPORT = {"width": 1280, "height": 900}
# The demo case shown: mediation with the meeting held and the certificate due.
CASE_FAMILY = "Morgan Price"
ADVISER_EMAIL = f"adviser@{DEMO_DOMAIN}"
PASSWORD = "screenshots-only-password"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument(
        "--full-page", action="store_true", help="the whole page, not just the 1280x900 window"
    )
    args = parser.parse_args()
    missing = missing_browser()
    if missing:
        print(f"cannot take screenshots: {missing}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="casework-screenshots-") as tmp:
        settings = load_settings(
            environment="development",
            data_dir=Path(tmp),
            database_url=f"sqlite:///{tmp}/casework.db",
        )
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        with session_scope(engine) as session:
            cases.sync_providers(session, settings)
            load_demo(session, settings, now=MOMENT)  # credentials printed there are not needed
            adviser = session.execute(
                select(User).where(col(User.email) == ADVISER_EMAIL)
            ).scalar_one()
            auth.set_password(session, adviser, PASSWORD, now=MOMENT)
            reference = session.execute(
                select(col(Case.reference))
                .join(Person, col(Person.case_id) == Case.id)
                .where(col(Person.name) == CASE_FAMILY, col(Person.role) == "family")
            ).scalar_one()
        run_once(engine, settings, MOMENT)  # the scheduler's first tick: notices sent
        app = create_app(settings, engine)
        app.state.clock = lambda: MOMENT
        with live_server(app) as base_url, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
            page = context.new_page()
            page.goto("/sign-in")
            page.get_by_label("Email address").fill(ADVISER_EMAIL)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            with page.expect_navigation():
                page.get_by_role("button", name="Sign in", exact=True).click()
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(args.out / "dashboard.png"), full_page=args.full_page)
            page.goto(f"/cases/{reference}")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(args.out / "case.png"), full_page=args.full_page)
            browser.close()
        engine.dispose()
    for name in ("dashboard.png", "case.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
