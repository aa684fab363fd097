"""The manager's data-protection pages: who has seen a case (and, below, the others).

Each rule is proved on the use case in tests/integration; here the pages show it in
words, to managers only, on both databases.
"""

from __future__ import annotations

import re

from casework.cases.seen_by import who_has_seen
from tests.conftest import MANAGER
from tests.web.conftest import Web, make_case

ISO = re.compile(r"\d{4}-\d{2}-\d{2}")


def test_who_has_seen_lists_every_look_in_words_for_managers(web: Web) -> None:
    case = make_case(web, provider="solution-talk", accepted=True)
    web.browser("adviser").get(f"/cases/{case.reference}")
    web.clock.now = web.clock.now.replace(hour=14, minute=5)
    web.browser("provider_a").get(f"/portal/cases/{case.reference}")
    manager = web.browser("manager")
    case_page = manager.get(f"/cases/{case.reference}").text
    assert f'href="/cases/{case.reference}/seen-by"' in case_page

    html = manager.get(f"/cases/{case.reference}/seen-by").text
    assert '<h1 class="govuk-heading-l">Who has seen this case</h1>' in html
    main = html.split("<main", 1)[1]
    assert "3 looks recorded." in main
    # Newest first: the manager, the provider's staff member, the adviser.
    order = [
        main.index(who) for who in ("manager</strong>", "provider_a</strong>", "adviser</strong>")
    ]
    assert order == sorted(order)
    assert "IAS manager" in main and "IAS adviser" in main
    assert "Provider staff at Solution Talk" in main
    assert "Opened the case, through the provider portal" in main
    assert "Opened the case, through the web app" in main
    assert "at 2:05pm" in main
    for code in ("viewed", "user:", ">portal<", "manager@", ISO.pattern):
        assert not re.search(code, main), code


def test_who_has_seen_is_for_managers_only(web: Web) -> None:
    case = make_case(web)
    for who in ("adviser", "provider_a"):
        response = web.browser(who).get(f"/cases/{case.reference}/seen-by")
        assert response.status_code in (403, 404), who
    case_page = web.browser("adviser").get(f"/cases/{case.reference}").text
    assert "/seen-by" not in case_page
    assert web.browser("manager").get("/cases/MED-2026-9999/seen-by").status_code == 404


def test_the_read_model_names_a_subject_access_export(web: Web) -> None:
    from casework.cases.subject_access import export_subject_access

    case = make_case(web)
    with web.session() as s:
        export_subject_access(s, now=web.clock.now, actor=MANAGER, reference=case.reference)
        seen = who_has_seen(s, case.reference, actor=MANAGER)
    assert [look.what for look in seen.looks] == [
        "Exported everything held about the family (subject access)"
    ]
    assert (seen.looks[0].who, seen.looks[0].role) == ("manager", "IAS manager")
    assert seen.looks[0].through == "the command line"
