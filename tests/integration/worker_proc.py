"""A dispatcher / scheduler worker run as its own process by ``test_workers.py``.

Not a test (pytest does not collect it): the crash and multi-worker tests start it
with ``sys.executable tests/integration/worker_proc.py ...`` so that a worker can be
killed with SIGKILL, and several can run against one database at once. Everything
it needs comes from the environment, exactly as for ``casework worker``:
``CASEWORK_DATABASE_URL``, ``CASEWORK_SENDGRID_API_KEY``/``_HOST``,
``CASEWORK_TWILIO_ACCOUNT_SID``/``_AUTH_TOKEN``/``_FROM``/``_BASE_URL``.

It works as of a fixed ``--now`` (time is the caller's to choose), in a loop:
``--sweep`` runs the reminder sweep before each dispatch; ``--tick`` runs
``scheduler.run_once`` instead (the same two calls, the scheduler's batch sizes).
The loop ends when a round finds nothing to claim. With ``--wait-for-go`` it
prints ``ready`` once imports and connections are warm, then waits for a line on
stdin, so a test can start several workers at the same instant. The totals are
printed as one JSON line on stdout at the end (a killed worker prints nothing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--now", required=True, help="ISO datetime with offset, e.g. ...+00:00")
    parser.add_argument("--batch", type=int, default=5, help="notices per dispatch round")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="sender threads (default: settings)"
    )
    parser.add_argument("--sweep", action="store_true", help="sweep before each dispatch")
    parser.add_argument("--sweep-batch", type=int, default=25)
    parser.add_argument("--tick", action="store_true", help="loop scheduler.run_once instead")
    parser.add_argument("--wait-for-go", action="store_true")
    args = parser.parse_args(argv)

    from casework.config import load_settings
    from casework.db import make_engine
    from casework.notify.dispatch import build_channels, dispatch
    from casework.reminders import sweep
    from casework.scheduler import run_once

    now = dt.datetime.fromisoformat(args.now)
    if now.tzinfo is None:
        raise SystemExit("--now needs a UTC offset")
    settings = load_settings()
    engine = make_engine(settings.resolved_database_url)
    channels = build_channels(settings)
    with engine.connect() as conn:  # warm the pool before the starting gun
        conn.exec_driver_sql("SELECT 1")
    if args.wait_for_go:
        print("ready", flush=True)
        sys.stdin.readline()

    totals: Counter[str] = Counter()
    rounds = 0
    while True:
        rounds += 1
        if args.tick:
            result = run_once(engine, settings, now)
            swept: dict[str, Any] = result["sweep"]
            sent: dict[str, Any] = result["dispatch"]
        else:
            swept = (
                sweep(engine, now, settings, batch_size=args.sweep_batch).as_dict()
                if args.sweep
                else {"claimed": 0}
            )
            sent = dispatch(
                engine,
                now,
                settings,
                channels=channels,
                limit=args.batch,
                concurrency=args.concurrency,
            ).as_dict()
        for prefix, part in (("sweep_", swept), ("dispatch_", sent)):
            for key, value in part.items():
                if isinstance(value, int):
                    totals[prefix + key] += value
        if swept["claimed"] == 0 and sent["claimed"] == 0:
            break
    engine.dispose()
    print(json.dumps({"rounds": rounds, **totals}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
