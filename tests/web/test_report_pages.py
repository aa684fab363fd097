"""The Reports pages and API against the hand-listed caseload, on SQLite and PostgreSQL.

Managers read every figure (the hand-computed values of tests/integration/
test_reports.py, found again in the pages' tables and the API's JSON) and follow a
number to the cases behind it. Commissioners read aggregates only: every response
a commissioner can get (pages, CSV downloads, API) is scanned for every name,
phone number, email address, reference and free-text reason in the caseload, and
small counts come back as "fewer than 5".
"""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from casework import auth
from casework.models import User
from casework.reports import formatting as fmt
from tests import caseload
from tests.caseload import AS_OF
from tests.integration.test_reports import (
    FLOW_2025,
    FLOW_2026,
    SEN2,
    TIMELINESS_2025,
    TIMELINESS_2026,
    timeliness_table,
)
from tests.web.conftest import Browser, Web, password_hash

Y2025 = "from=2025-01-01&to=2025-12-31"
Y2026 = "from=2026-01-01&to=2026-12-31"
PROVIDER_NAMES = {
    "solution-talk": "Solution Talk",
    "collis": "Collis Mediation",
    "kids": "KIDS",
    "link": "Link Mediation Ltd",
    "together-trust": "Together Trust",
}


class Tables(HTMLParser):
    """Every <table> in a page as rows of cell texts (visually hidden words dropped)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self._hidden = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = dict(attrs).get("class") or ""
        if self._hidden or "govuk-visually-hidden" in classes:
            self._hidden += 1
        if tag == "table":
            self.tables.append({"caption": "", "rows": []})
        elif tag == "caption":
            self._caption = []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if self._hidden:
            self._hidden -= 1
        if tag == "caption" and self._caption is not None:
            self.tables[-1]["caption"] = " ".join("".join(self._caption).split())
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1]["rows"].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._cell is not None:
            self._cell.append(data)
        elif self._caption is not None:
            self._caption.append(data)

    def table(self, caption_starts: str) -> list[list[str]]:
        for t in self.tables:
            if t["caption"].startswith(caption_starts):
                return t["rows"][1:]  # without the header row
        raise AssertionError(f"no table captioned {caption_starts!r}")


@pytest.fixture
def reports_web(web: Web) -> Web:
    with web.session() as s:
        caseload.load(s)
        user = User(
            email="cara.commissioner@icb.example.org",
            name="Cara",
            role="commissioner",
            password_hash=password_hash(),
            created_at=AS_OF,
        )
        s.add(user)
        s.commit()
        web.users["commissioner"] = user
    web.clock.now = AS_OF
    return web


def token_for(web: Web, who: str) -> dict[str, str]:
    with web.session() as s:
        user = s.get(User, web.users[who].id)
        assert user is not None
        token = auth.create_api_token(s, user, name="reports", now=AS_OF)
    return {"Authorization": f"Bearer {token}"}


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _page_timeliness(browser: Browser, query: str) -> dict[tuple[str, str], tuple[int, ...]]:
    response = browser.get(f"/reports/timeliness?{query}")
    assert response.status_code == 200, response.text
    tables = Tables(response.text)
    labels = {v: k for k, v in fmt.CLOCK_LABELS.items()}
    names = {v: k for k, v in PROVIDER_NAMES.items()} | {"No provider": "none"}
    out: dict[tuple[str, str], tuple[int, ...]] = {}
    for row in tables.table("Clocks due in the period, all providers"):
        out[(labels[row[0]], "all")] = tuple(_int(v) for v in row[1:8])
    for row in tables.table("Clocks due in the period, by the provider"):
        out[(labels[row[0]], names[row[1]])] = tuple(_int(v) for v in row[2:9])
    return out


@pytest.mark.parametrize(
    ("query", "expected"), [(Y2025, TIMELINESS_2025), (Y2026, TIMELINESS_2026)]
)
def test_manager_timeliness_page_shows_every_hand_computed_count(
    reports_web: Web, query: str, expected: dict[Any, tuple[Any, ...]]
) -> None:
    manager = reports_web.browser("manager")
    assert _page_timeliness(manager, query) == {k: v[:7] for k, v in expected.items()}
    page = manager.get(f"/reports/timeliness?{query}").text
    assert '<svg role="img"' in page and "chart-timeliness-title" in page
    assert "style=" not in page.split("<svg", 1)[1].split("</svg>", 1)[0]


def test_manager_follows_a_number_to_the_cases_behind_it(reports_web: Web) -> None:
    manager = reports_web.browser("manager")
    page = manager.get(f"/reports/timeliness?{Y2025}").text
    link = re.search(
        r'href="(/reports/cases\?[^"]*certificate_after_decline%7Call%7Cmet_late[^"]*)"', page
    )
    assert link, "the late-certificate count links to its cases"
    cases = manager.get(link.group(1).replace("&amp;", "&"))
    assert cases.status_code == 200
    assert re.findall(r">((?:MED|DR)-\d{4}-\d{4})<", cases.text) == ["MED-2025-0005"]
    sen2 = manager.get("/reports/sen2?year=2026").text
    assert "Outcome not yet known: cases to chase" in sen2 and "MED-2026-0003" in sen2


@pytest.mark.parametrize(("query", "expected"), [(Y2025, FLOW_2025), (Y2026, FLOW_2026)])
def test_manager_flow_page(
    reports_web: Web, query: str, expected: dict[str, dict[str, int]]
) -> None:
    page = reports_web.browser("manager").get(f"/reports/flow?{query}")
    assert page.status_code == 200
    tables = Tables(page.text)
    from casework.reports.queries import BREAKDOWNS

    for b in BREAKDOWNS:
        rows = tables.table(b.title)
        want = {
            (k if b.free_text else fmt.category_label(k, PROVIDER_NAMES)): str(n)
            for k, n in expected[b.key].items()
        }
        got = {r[0]: r[1] for r in rows if len(r) == 2}
        assert got == want, b.key


@pytest.mark.parametrize("year", [2025, 2026])
def test_manager_sen2_page(reports_web: Web, year: int) -> None:
    page = reports_web.browser("manager").get(f"/reports/sen2?year={year}")
    rows = dict(r for r in Tables(page.text).table("Mediation cases held") if len(r) == 2)
    want = SEN2[year]
    assert rows == {
        "Mediation cases held": str(want["held"]),
        "Followed by an appeal to the Tribunal": str(want["appeal"]),
        "Not followed by an appeal": str(want["no_appeal"]),
        "Outcome not yet known": str(want["unknown"]),
        "Proportion followed by an appeal": f"{want['percent']:g}%",
    }


def test_manager_api(reports_web: Web) -> None:
    client = reports_web.browser().client
    headers = token_for(reports_web, "manager")
    rows = client.get(f"/api/v1/reports/timeliness?{Y2025}", headers=headers).json()
    assert timeliness_table(rows) == TIMELINESS_2025
    flow = client.get(f"/api/v1/reports/flow?{Y2026}", headers=headers).json()
    assert flow["figures"] == FLOW_2026
    for year, want in SEN2.items():
        got = client.get(f"/api/v1/reports/sen2?year={year}", headers=headers).json()
        assert (got["year"], got["mediation_cases_held"], got["followed_by_appeal"]) == (
            year,
            want["held"],
            want["appeal"],
        )
        assert got["outcome_unknown"] == want["unknown"]
    behind = client.get(
        f"/api/v1/reports/cases?{Y2026}&figure=sen2&category=outcome_unknown", headers=headers
    ).json()
    assert [c["reference"] for c in behind] == ["MED-2026-0003"]
    bad = client.get("/api/v1/reports/timeliness?from=2026-02-01&to=2026-01-01", headers=headers)
    assert bad.status_code == 422 and "ends before it starts" in bad.json()["error"]


def test_other_roles_cannot_read_reports(reports_web: Web) -> None:
    for who in ("adviser", "provider_a"):
        assert reports_web.browser(who).get("/reports").status_code == 403
        client = reports_web.browser().client
        got = client.get(f"/api/v1/reports/sen2?{Y2026}", headers=token_for(reports_web, who))
        assert got.status_code == 403


# --- Commissioners ------------------------------------------------------------------------


# Whole words, any case: "Wei" is a surname here, not the start of "weight".
PATTERNS = [(s, re.compile(rf"(?<!\w){re.escape(s)}(?!\w)", re.I)) for s in caseload.PERSONAL]


def commissioner_urls() -> list[str]:
    urls = []
    for query in (Y2025, Y2026, "from=2025-01-01&to=2026-12-31"):
        for provider in ("", *PROVIDER_NAMES):
            q = query + (f"&provider={provider}" if provider else "")
            urls += [
                f"/reports?{q}",
                f"/reports/timeliness?{q}",
                f"/reports/flow?{q}",
                f"/reports/sen2?{q}",
                *[
                    f"/reports/download/{name}.csv?{q}"
                    for name in ("figures", "timeliness", "months", "flow", "sen2", "cases")
                ],
                f"/api/v1/reports/timeliness?{q}",
                f"/api/v1/reports/timeliness/months?{q}",
                f"/api/v1/reports/flow?{q}",
                f"/api/v1/reports/sen2?{q}",
            ]
    return [*urls, "/reports/sen2", "/reports/sen2?year=2025", "/reports/sen2?year=2026"]


def test_a_commissioner_sees_no_personal_data_anywhere(reports_web: Web) -> None:
    browser = reports_web.browser("commissioner")
    headers = token_for(reports_web, "commissioner")
    seen = 0
    for url in commissioner_urls():
        if url.startswith("/api/"):
            response = browser.client.get(url, headers=headers)
        else:
            response = browser.get(url)
        assert response.status_code == 200, (url, response.text[:300])
        for secret, pattern in PATTERNS:
            assert not pattern.search(response.text), f"{secret!r} shown to a commissioner at {url}"
        seen += 1
    assert seen > 100


def test_a_commissioner_sees_small_numbers_as_fewer_than_5(reports_web: Web) -> None:
    browser = reports_web.browser("commissioner")
    headers = token_for(reports_web, "commissioner")
    page = browser.get("/reports/sen2?year=2026")
    rows = dict(r for r in Tables(page.text).table("Mediation cases held") if len(r) == 2)
    assert rows == {
        "Mediation cases held": "fewer than 5",
        "Followed by an appeal to the Tribunal": "fewer than 5",
        "Not followed by an appeal": "fewer than 5",
        "Outcome not yet known": "fewer than 5",
        "Proportion followed by an appeal": "withheld (fewer than 5)",
    }
    assert "/reports/cases" not in page.text and "cases to chase" not in page.text
    api = browser.client.get("/api/v1/reports/sen2?year=2025", headers=headers).json()
    assert api["mediation_cases_held"] == "fewer than 5"
    assert api["percent_followed_by_appeal"] == "withheld (fewer than 5)"
    # Over both years, the requests by channel reach 5 and are shown as numbers.
    flow = browser.client.get(
        "/api/v1/reports/flow?from=2025-01-01&to=2026-12-31", headers=headers
    ).json()
    assert flow["figures"]["requests_by_channel"] == {"email": 5, "helpline": 10}
    assert flow["figures"]["requests_by_kind"] == {"disagreement": "fewer than 5", "mediation": 13}
    assert "withdrawal_reasons" not in flow["figures"]
    text = browser.get(f"/reports/download/timeliness.csv?{Y2026}").text
    rows_csv = list(csv.DictReader(io.StringIO(text)))
    assert {r["due"] for r in rows_csv} <= {"0", "fewer than 5"}


def test_a_commissioner_reaches_nothing_but_the_reports(reports_web: Web) -> None:
    browser = reports_web.browser("commissioner")
    headers = token_for(reports_web, "commissioner")
    for url in (
        "/",
        "/cases/new",
        "/manager",
        "/portal",
        f"/reports/cases?{Y2026}&figure=sen2&category=outcome_unknown",
    ):
        assert browser.get(url).status_code in (403, 404), url
    assert browser.get("/cases/MED-2026-0003").status_code == 404
    for url in (
        "/api/v1/cases",
        "/api/v1/cases/MED-2026-0003",
        "/api/v1/deadlines",
        f"/api/v1/reports/cases?{Y2026}&figure=sen2&category=outcome_unknown",
    ):
        assert browser.client.get(url, headers=headers).status_code == 403, url
    home = browser.get("/reports")
    assert 'href="/reports"' in home.text and 'href="/cases/new"' not in home.text
