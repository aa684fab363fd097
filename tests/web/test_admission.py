"""The web app admits at most 4 requests at once per process, fewer if its pool is smaller.

Why it exists (casework.web.app.Admission): under a burst, requests waiting for a
database connection took every worker thread while the requests holding connections
waited for a thread, and nothing moved until the pool's timeout failed them all.
These tests drive the middleware with a plain ASGI app that counts how many requests
are inside it at once, so they prove the bound itself, not a timing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool, QueuePool

from casework.web.app import PAGE_CONCURRENCY, Admission, _pool_capacity, admission_limit


class Counting:
    """An ASGI app that holds each request until released and records the most inside."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            await self.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.inside -= 1


async def _burst(paths: list[str], limit: int) -> tuple[Counting, list[int]]:
    app = Counting()
    admitted = Admission(app, limit=limit)
    statuses: list[int] = []

    async def one(path: str) -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await admitted({"type": "http", "path": path, "method": "GET"}, receive, send)

    tasks = [asyncio.create_task(one(p)) for p in paths]
    for _ in range(20):  # let every request reach the app or the queue
        await asyncio.sleep(0)
    app.release.set()
    await asyncio.gather(*tasks)
    return app, statuses


def test_a_burst_waits_its_turn_and_every_request_is_answered() -> None:
    """50 page requests against 4 connections: never more than 4 inside, all 50 answered."""
    app, statuses = asyncio.run(_burst(["/cases/MED-2026-0001"] * 50, limit=4))
    assert app.most == 4
    assert statuses == [200] * 50


def test_health_is_never_queued_behind_pages() -> None:
    """A load balancer's health check must answer while pages queue for connections."""
    app, statuses = asyncio.run(_burst(["/cases/MED-2026-0001"] * 10 + ["/health"] * 5, limit=2))
    assert app.most == 2 + 5
    assert len(statuses) == 15


@pytest.mark.parametrize(
    ("pool", "capacity", "limit"),
    [({"poolclass": QueuePool, "pool_size": 5, "max_overflow": 10}, 15, 4),
     ({"poolclass": QueuePool, "pool_size": 3, "max_overflow": 0}, 3, 3),
     ({"poolclass": NullPool}, None, 4)],
)  # fmt: skip
def test_the_bound_is_four_or_the_pool_size_plus_its_overflow_if_fewer(
    pool: dict[str, Any], capacity: int | None, limit: int, tmp_path: Any
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}", **pool)
    try:
        assert _pool_capacity(engine) == capacity
        assert admission_limit(engine) == limit
    finally:
        engine.dispose()


def test_the_app_admits_four_requests_at_once(tmp_path: Any) -> None:
    """The app as built puts the bound of 4 in front of its pages (its pool has 15)."""
    from casework.config import load_settings
    from casework.web.app import create_app

    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        app = create_app(load_settings(environment="test"), engine)
        admissions = [m for m in app.user_middleware if m.cls is Admission]
        assert [m.kwargs["limit"] for m in admissions] == [PAGE_CONCURRENCY] == [4]
    finally:
        engine.dispose()
