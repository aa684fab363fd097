"""Benchmark: rendering a mediation certificate, against a plain WeasyPrint render of its HTML.

Why this exists: issuing a certificate renders its PDF inside the event's transaction
(the adviser waits for it, and the case row is locked meanwhile), so it must be quick:
the target is under 300 ms a certificate on this machine. casework's render is Jinja2 +
the shared stylesheet + WeasyPrint with ``pdf_variant="pdf/ua-1"`` (a tagged PDF, its
structure tree written out) and a URL fetcher that refuses everything; the peer is
``weasyprint.HTML(string=same_html).write_pdf()`` with WeasyPrint's defaults (untagged),
so the ratio is the price of tagging and of the template step.

Nothing here touches a database: the certificate's context is built from in-memory
rows exactly as the use case builds it.

Run: ``.venv/bin/python bench/documents.py [renders]``.
"""

from __future__ import annotations

# isort: off
import _common  # first: it takes this folder off sys.path before anything else loads
# isort: on

import datetime as dt
import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from casework.cases.certificates import certificate_context, new_verification_code
from casework.config import load_settings
from casework.models import Case, Person
from casework.pdf import html_to_pdf, render_html, render_pdf

RENDERS = 20
TARGET_MS = 300.0


def context() -> dict[str, Any]:
    """A certificate after a declined mediation, as certificate_for_step builds it."""
    settings = load_settings(environment="test")
    case = Case(
        reference="MED-2026-0042",
        kind="mediation",
        state="declined",
        intake_channel="helpline",
        child_name="Sam Family",
        decision_date=dt.date(2026, 11, 2),
        decision_type="refuse_assessment",
        certificate_on=dt.date(2026, 11, 24),
    )
    family = Person(case_id=0, name="Jo Family")
    return certificate_context(
        case=case,
        family=family,
        certificate_type="declined",
        number="MC-2026-000123",
        code=new_verification_code(),
        version=1,
        issued_on=dt.date(2026, 11, 24),
        issued_by="Alice Adviser, mediation adviser, IAS Manchester",
        settings=settings,
        second=False,
    )


def timed(fn: Callable[[], bytes], renders: int) -> tuple[list[float], int]:
    """Wall times (s) of ``renders`` calls after one warm-up (fonts load on the first)."""
    size = len(fn())
    times = []
    gc.collect()
    for _ in range(renders):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times, size


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(renders: int = RENDERS, figures: dict[str, float] | None = None) -> int:
    import weasyprint

    ctx = context()
    html = render_html("certificate.html", ctx)
    ours, our_size = timed(lambda: render_pdf("certificate.html", ctx), renders)
    tagged_only, _ = timed(lambda: html_to_pdf(html), renders)
    plain, plain_size = timed(lambda: weasyprint.HTML(string=html).write_pdf() or b"", renders)

    def row(name: str, times: list[float], size: int | None = None) -> str:
        extra = f", {size / 1000:.0f} KB" if size else ""
        return (
            f"  {name:<44} median {_common.ms(statistics.median(times)):>9}"
            f"  p95 {_common.ms(p95(times)):>9}  max {_common.ms(max(times)):>9}{extra}"
        )

    print(f"certificate PDF render, {renders} renders each (after one warm-up)")
    print(row("casework render_pdf (template + PDF/UA-1)", ours, our_size))
    print(row("  of which HTML -> tagged PDF", tagged_only))
    print(row("plain WeasyPrint of the same HTML (untagged)", plain, plain_size))
    worst = max(p95(ours), p95(plain))
    ok = worst * 1000 < TARGET_MS
    print(
        f"target: each under {TARGET_MS:.0f} ms (p95): casework {_common.ms(p95(ours))},"
        f" plain {_common.ms(p95(plain))} -> {_common.verdict(ok)}"
    )
    if figures is not None:
        figures.update(
            casework_ms=statistics.median(ours) * 1000,
            casework_p95_ms=p95(ours) * 1000,
            plain_ms=statistics.median(plain) * 1000,
            plain_p95_ms=p95(plain) * 1000,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else RENDERS))
