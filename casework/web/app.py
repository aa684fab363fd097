"""The FastAPI application factory.

Routers are added per area (health, webhooks, pages, portal, api). The app reads
its settings and engine once at creation; tests build one per database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import Engine, QueuePool, text
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casework.config import Settings, get_settings
from casework.db import get_engine
from casework.web import api, assets, routing, webhooks
from casework.web.api import reports as api_reports
from casework.web.pages import OptionalStaticFiles
from casework.web.pages import reports as report_pages


@lru_cache(maxsize=8)
def _operations(app: FastAPI) -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    """Each path of the OpenAPI document as a pattern, with its methods."""
    return tuple(
        (compile_path(path)[0], tuple(operations))
        for path, operations in app.openapi().get("paths", {}).items()
    )


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, *, with_scheduler: bool = False
) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or get_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # `casework serve` runs the scheduler beside the web app (the embedded
        # default); production runs `casework worker` separately and web workers
        # never schedule, because APScheduler job stores must not be shared.
        scheduler = None
        if with_scheduler:
            from casework.cases.family import apply_sms_opt_outs
            from casework.cases.retention import run_scheduled
            from casework.scheduler import start_background

            scheduler = start_background(
                settings,
                engine,
                app.state.scheduler_status,
                apply_sms_opt_outs,
                retention=run_scheduled,
            )
        yield
        if scheduler is not None:
            # Wait for a job still running (a sweep's batch, a dispatch) to end its
            # transaction: the app is stopping, and whatever closes the database or
            # drops its schema next must not pull it from under the job.
            scheduler.shutdown(wait=True)
            app.state.scheduler_status["running"] = False

    app = FastAPI(
        lifespan=lifespan,
        title="casework",
        version="0.1.0",
        # The docs page is served below with its assets from the app itself.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.scheduler_status = {"running": False}
    # The REST API answers its own errors as JSON (api.common.ApiRoute), so it needs no
    # app-wide exception handler that could clash with the pages' error pages.
    app.include_router(api.router)
    app.include_router(webhooks.router)
    app.include_router(api_reports.router)
    app.include_router(report_pages.router)

    def allow_header(path: str) -> bytes | None:
        """Every method ``path`` has, as the OpenAPI says (None when it has none)."""
        methods = sorted(
            method.upper()
            for pattern, operations in _operations(app)
            if pattern.match(path)
            for method in operations
        )
        return ", ".join(methods).encode() if methods else None

    app.add_middleware(AllowEveryMethod, allow_header=allow_header)

    app.mount(
        "/assets/swagger",
        OptionalStaticFiles(directory=assets.SWAGGER_DIST, check_dir=False),
        name="swagger",
    )

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        """The API's documentation, its scripts and styles served by casework (no CDN)."""
        return get_swagger_ui_html(
            openapi_url="/api/v1/openapi.json",
            title="casework API",
            swagger_js_url="/assets/swagger/swagger-ui-bundle.js",
            swagger_css_url="/assets/swagger/swagger-ui.css",
            swagger_favicon_url="/assets/swagger/favicon-32x32.png",
        )

    @app.get("/health", tags=["health"])
    def health() -> JSONResponse:
        """Database reachable and scheduler state; 503 when the database is not."""
        body: dict[str, Any] = {"status": "ok", "scheduler": app.state.scheduler_status}
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            body["database"] = "ok"
        except Exception as exc:  # report, don't crash: this is the probe
            body["status"] = "error"
            body["database"] = f"unreachable: {type(exc).__name__}"
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    # Pages, /assets and /static, error pages, security headers; then the provider portal,
    # which reuses the pages' case view (and their error pages).
    from casework.web import pages, portal

    pages.install(app)
    app.include_router(portal.router)
    routing.skip_by_prefix(app)

    app.add_middleware(Admission, limit=admission_limit(engine))
    return app


def warm_up(app: FastAPI) -> None:
    """Do now, before this process listens, what its first requests would otherwise do.

    A web process starting cold (a restart, or the second of ``serve --workers 2``)
    compiled its templates, built its working-day calendars, opened its database
    connections, counted the cases per state and built and compiled the case list's
    statements while its first visitors waited:
    under an open-loop 100 requests a second, the half second or more that took (the
    requests it was given meanwhile all queued behind it) was most of the slowest 5%.
    ``casework serve`` calls this before it listens; tests, which make an app per
    database and render a handful of pages, do not pay for it.
    """
    from sqlmodel import Session

    from casework import cases
    from casework.web.pages import common

    settings: Settings = app.state.settings
    engine: Engine = app.state.engine
    settings.calendars  # noqa: B018  (built on first use and kept)
    common.compile_templates()
    # As many connections as requests are let in at once, opened now and kept by the
    # pool, rather than one per request in the first burst.
    connections = [engine.connect() for _ in range(admission_limit(engine))]
    for connection in connections:
        connection.close()
    with Session(engine) as session:
        common.state_counts(app, session)
        # The adviser's list as the dashboard first asks for it: its statements built,
        # compiled and planned once here (tens of milliseconds), not for a visitor.
        cases.find_cases(
            session,
            cases.CaseCriteria(sort="urgency"),
            limit=25,
            offset=0,
            actor=cases.Actor(id="system:warm-up", role="adviser", channel="web"),
            now=dt.datetime.now(dt.UTC),
            settings=settings,
            count=False,
        )


class AllowEveryMethod:
    """A 405's Allow header lists every method the path has, as the OpenAPI says.

    Each method of a path is its own route, and Starlette names only the first route it
    matched; the document the API publishes knows them all. Pure ASGI (it only edits
    the response's first message): as an ``@app.middleware("http")`` function it ran
    every request through a task and a pair of streams.
    """

    def __init__(self, app: ASGIApp, allow_header: Callable[[str], bytes | None]) -> None:
        self.app = app
        self.allow_header = allow_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allow = self.allow_header(scope["path"])
                if allow is not None:
                    headers = [(k, v) for k, v in message.get("headers", []) if k != b"allow"]
                    message = {**message, "headers": [*headers, (b"allow", allow)]}
            await send(message)

        await self.app(scope, receive, send_with_allow)


# Requests worked on at once per process. A page is mostly Python holding the GIL: past
# a few at once, more threads only take turns (each switch costing), so a burst's later
# requests wait in the event loop, cheaply, and the ones admitted finish sooner.
PAGE_CONCURRENCY = 4


def admission_limit(engine: Engine) -> int:
    """How many requests :class:`Admission` lets in at once: :data:`PAGE_CONCURRENCY`,
    or fewer when the pool has fewer connections."""
    connections = _pool_capacity(engine)
    return PAGE_CONCURRENCY if connections is None else min(PAGE_CONCURRENCY, connections)


def _pool_capacity(engine: Engine) -> int | None:
    """How many database connections this process may hold at once (None: no bound)."""
    pool = engine.pool
    if isinstance(pool, QueuePool):
        return pool.size() + max(0, pool._max_overflow)
    return None


class Admission:
    """At most ``limit`` requests in the app at once (:func:`admission_limit`: never more
    than the pool has connections); the rest wait their turn here, before they take
    anything.

    Why: a page's dependencies (its session and sign-in) run in one worker thread and
    hold a database connection, and its endpoint runs later in another. Under a burst
    (an open-loop load of 100 requests a second found it), every thread was taken by new
    requests waiting for a connection while the requests holding the connections waited
    for a thread: nothing moved until the pool's 30-second timeout failed them. Queued
    here instead, each admitted request finds a connection, and a burst costs waiting,
    not errors. Fewer still than the connections (4): at 100 requests a second on two
    cores, a dozen pages at once in one process only took turns at the GIL, and each
    finished later than if it had waited here. ``/health`` and static files are not
    queued.
    """

    _EXEMPT = ("/health", "/assets/", "/static/")

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        # One queue per event loop: a server runs one loop, but a test client may run
        # each request on its own, and an asyncio semaphore must not cross loops.
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._slots = weakref.WeakKeyDictionary()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self._EXEMPT):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.limit)
        async with slots:
            await self.app(scope, receive, send)
