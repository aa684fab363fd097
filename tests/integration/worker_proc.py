"""A dispatcher or scheduler worker in its own process, for the worker tests and bench/crash.py.

Not a test (pytest does not collect it): the crash and multi-worker tests start it
with ``sys.executable tests/integration/worker_proc.py ...`` so that a worker can be
killed with SIGKILL, and several can run against one database at once. Everything
it needs comes from the environment, exactly as for ``casework worker``:
``CASEWORK_DATABASE_URL``, ``CASEWORK_SENDGRID_API_KEY``/``_HOST``,
``CASEWORK_TWILIO_ACCOUNT_SID``/``_AUTH_TOKEN``/``_FROM``/``_BASE_URL``.

It works as of a fixed ``--now`` (time is the caller's to choose), or of the real
clock with ``--real-clock``, in a loop: ``--sweep`` runs the reminder sweep before
each dispatch; ``--tick`` runs ``scheduler.run_once`` instead (the same calls, the
scheduler's settings). The loop ends when a round finds nothing to claim, or with
``--until-done`` when no notice is queued or claimed any more (claims a dead worker
left behind are waited out). With ``--wait-for-go`` it prints ``ready`` once
imports and connections are warm, then waits for a line on stdin, so a test can
start several workers at the same instant. The totals are printed as one JSON line
on stdout at the end (a killed worker prints nothing).

``--serve-forks`` makes it a fork server for crash campaigns: it imports everything
once, prints ``ready``, then for each line ``<iso now>`` on stdin forks a child that
runs the loop above as of that moment and prints ``child <pid>``. Killing the child
with SIGKILL is a real crash of a real dispatcher process, without paying Python's
start-up for each of dozens of kills.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
from collections import Counter
from typing import Any


def work(args: argparse.Namespace, now: dt.datetime | None, settings: Any = None) -> dict[str, Any]:
    """The worker loop as of ``now`` (``None``: the real clock, read every round)."""
    from sqlalchemy import func, select

    from casework.config import load_settings
    from casework.db import make_engine
    from casework.models import Notice, NoticeStatus
    from casework.notify.dispatch import build_channels, dispatch
    from casework.reminders import sweep
    from casework.scheduler import run_once

    settings = settings or load_settings()
    engine = make_engine(settings.resolved_database_url)
    channels = build_channels(settings)
    notices: Any = Notice.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:  # warm the pool before the starting gun
        conn.exec_driver_sql("SELECT 1")
    if args.wait_for_go:
        print("ready", flush=True)
        sys.stdin.readline()

    totals: Counter[str] = Counter()
    rounds = 0
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        rounds += 1
        at = now or dt.datetime.now(dt.UTC)
        try:
            if args.tick:
                result = run_once(engine, settings, at)
                swept: dict[str, Any] = result["sweep"]
                sent: dict[str, Any] = result["dispatch"]
            else:
                swept = (
                    sweep(engine, at, settings, batch_size=args.sweep_batch).as_dict()
                    if args.sweep
                    else {"claimed": 0}
                )
                sent = dispatch(
                    engine,
                    at,
                    settings,
                    channels=channels,
                    limit=args.batch,
                    concurrency=args.concurrency,
                ).as_dict()
        except Exception as exc:  # a killed database connection: the next round goes on
            totals["round_errors"] += 1
            print(f"round failed: {type(exc).__name__}", file=sys.stderr, flush=True)
            time.sleep(0.1)
            continue
        for prefix, part in (("sweep_", swept), ("dispatch_", sent)):
            for key, value in part.items():
                if isinstance(value, int):
                    totals[prefix + key] += value
        if swept["claimed"] == 0 and sent["claimed"] == 0:
            if not args.until_done:
                break
            try:
                with engine.connect() as conn:
                    open_work = conn.execute(
                        select(func.count()).where(
                            notices.c.status.in_([NoticeStatus.queued, NoticeStatus.sending])
                        )
                    ).scalar_one()
            except Exception:
                open_work = 1
            if open_work == 0:
                break
            time.sleep(0.1)
    engine.dispose()
    return {"rounds": rounds, **totals}


def serve_forks(args: argparse.Namespace) -> int:
    # Everything heavy is imported here, once, before any fork; no thread and no
    # database connection exists yet, so each child starts clean.
    import casework.notify.dispatch
    import casework.notify.sendgrid_email
    import casework.notify.twilio_sms
    import casework.scheduler  # noqa: F401
    from casework.config import load_settings

    settings = load_settings()

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    print("ready", flush=True)
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        now = dt.datetime.fromisoformat(text)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                totals = work(args, now, settings)
                print(json.dumps({"pid": os.getpid(), **totals}), flush=True)
            finally:
                os._exit(0)
        print(f"child {pid}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--now", help="ISO datetime with offset, e.g. ...+00:00")
    parser.add_argument("--real-clock", action="store_true", help="use the wall clock")
    parser.add_argument("--batch", type=int, default=5, help="notices per dispatch round")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="sender threads (default: settings)"
    )
    parser.add_argument("--sweep", action="store_true", help="sweep before each dispatch")
    parser.add_argument("--sweep-batch", type=int, default=25)
    parser.add_argument("--tick", action="store_true", help="loop scheduler.run_once instead")
    parser.add_argument("--wait-for-go", action="store_true")
    parser.add_argument("--until-done", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--serve-forks", action="store_true")
    args = parser.parse_args(argv)
    if args.serve_forks:
        return serve_forks(args)
    if args.real_clock:
        now = None
    else:
        if not args.now:
            raise SystemExit("--now or --real-clock is required")
        now = dt.datetime.fromisoformat(args.now)
        if now.tzinfo is None:
            raise SystemExit("--now needs a UTC offset")
    print(json.dumps(work(args, now)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
