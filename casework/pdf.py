"""HTML + CSS to a tagged PDF (PDF/UA-1) with WeasyPrint: pure, no network, no casework.

Documents are Jinja2 HTML templates in ``casework/pdf_templates`` sharing one
stylesheet (``base.css``, GOV.UK-like typography in a system sans font). The PDF is
tagged (``pdf_variant="pdf/ua-1"``) so a screen reader reads it in order, with its
language and title set, because a family may rely on one to read its certificate.

Nothing is fetched while rendering: the stylesheet is read here and passed in, and
the URL fetcher refuses every URL (remote or local) except inline ``data:`` ones, so
a template can never make the server call out, nor read a file it should not.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

TEMPLATE_DIR = Path(__file__).parent / "pdf_templates"
PDF = "application/pdf"


class PdfRenderError(Exception):
    """A template is missing, needs data it was not given, or asked to fetch a URL."""


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache(maxsize=1)
def stylesheet() -> str:
    return (TEMPLATE_DIR / "base.css").read_text(encoding="utf-8")


def render_html(template_name: str, context: dict[str, Any]) -> str:
    """The document's HTML (with the stylesheet inlined), before it becomes a PDF."""
    try:
        template = _environment().get_template(template_name)
        return template.render(**context, stylesheet=stylesheet())
    except TemplateNotFound as exc:
        raise PdfRenderError(f"no document template named {template_name!r}") from exc
    except PdfRenderError:
        raise
    except Exception as exc:  # StrictUndefined and template errors
        raise PdfRenderError(f"document {template_name} could not be rendered: {exc}") from exc


def _refuse(url: str, *_args: Any, **_kwargs: Any) -> Any:
    from weasyprint.urls import FatalURLFetchingError

    raise FatalURLFetchingError(f"documents fetch nothing, but the template asked for {url!r}")


def _no_fetch_fetcher() -> Any:
    """A WeasyPrint fetcher that answers inline ``data:`` URLs and refuses all others."""
    from weasyprint.urls import URLFetcher

    class NoFetch(URLFetcher):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(allowed_protocols=("data",), fail_on_errors=True)

        def fetch(self, url: str, headers: Any = None) -> Any:
            if not url.lower().startswith("data:"):
                _refuse(url)
            return super().fetch(url, headers)

    return NoFetch()


def html_to_pdf(html: str) -> bytes:
    """Tagged PDF/UA-1 bytes of ``html`` (its stylesheet inline); fetches nothing."""
    # WeasyPrint loads pango and cairo when imported; importing it here keeps
    # every command that makes no document (and the test collection) fast.
    try:
        import weasyprint
        from weasyprint.urls import FatalURLFetchingError
    except OSError as exc:  # pango is a system library, not a Python package
        raise PdfRenderError(
            "PDFs cannot be made on this machine: WeasyPrint needs pango (Debian:"
            " apt-get install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0"
            f" fonts-liberation). {exc}"
        ) from exc

    try:
        document = weasyprint.HTML(string=html, url_fetcher=_no_fetch_fetcher())
        pdf = document.write_pdf(pdf_variant="pdf/ua-1", uncompressed_pdf=False)
    except FatalURLFetchingError as exc:
        raise PdfRenderError(str(exc.__cause__ or exc)) from exc
    if not isinstance(pdf, bytes):
        raise PdfRenderError("WeasyPrint returned no PDF")
    return pdf


def render_pdf(template_name: str, context: dict[str, Any]) -> bytes:
    """``template_name`` (e.g. ``"certificate.html"``) filled with ``context``, as a tagged PDF."""
    return html_to_pdf(render_html(template_name, context))
