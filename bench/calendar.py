"""Benchmark: ``casework.deadlines.add_working_days`` against ``numpy.busday_offset``.

Why this exists: integration-notes section 5 measured a day-by-day loop at ~24 µs a
call and numpy at ~6 µs, and ``deadlines.py`` replaced the loop with a precomputed
index so the clocks cost nothing on every transition and sweep. This script checks
that claim on this machine ("no slower than numpy per call"), checks the two agree
on every input with n >= 1, and prints the one-off cost of building the index.

Run: ``.venv/bin/python bench/calendar.py`` (needs numpy in the venv).

Note on the file name: run as a script, this file's folder heads ``sys.path``, so
``bench/calendar.py`` would shadow the standard library's ``calendar`` module that
``holidays`` imports. The folder is therefore dropped from ``sys.path`` before any
other import.
"""

from __future__ import annotations

# isort: off
# isort: on
import datetime as dt
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable

import holidays
import numpy as np

from casework import deadlines

CALLS = 200_000
REPEATS = 5
SEED = 20260403
FIRST, LAST = dt.date(2022, 1, 1), dt.date(2028, 12, 31)


def make_inputs(count: int, seed: int) -> tuple[list[dt.date], list[int]]:
    """Random start dates 2022-2028 and n uniform in 0..39, as the clocks see them."""
    rng = random.Random(seed)
    a, b = FIRST.toordinal(), LAST.toordinal()
    starts = [dt.date.fromordinal(rng.randint(a, b)) for _ in range(count)]
    ns = [rng.randint(0, 39) for _ in range(count)]
    return starts, ns


def build_numpy_calendar() -> np.busdaycalendar:
    """The numpy equivalent: weekdays minus England bank holidays 2000-2100."""
    bank = holidays.country_holidays("GB", subdiv="ENG", years=range(2000, 2101))
    return np.busdaycalendar(
        weekmask="1111100", holidays=np.array(sorted(bank), dtype="datetime64[D]")
    )


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall times of ``fn`` over several repeats, with the collector off as timeit does."""
    times = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        finally:
            gc.enable()
    return times


def per_item(times: list[float], items: int, unit: float = 1e6) -> tuple[float, float]:
    """Best and median time per item (µs by default)."""
    return min(times) / items * unit, statistics.median(times) / items * unit


def main(calls: int = CALLS, figures: dict[str, float] | None = None) -> int:
    """Time each approach on the same inputs, check agreement, print the figures.

    ``figures`` also gets the best µs per call of casework and of numpy's scalar call.
    """
    starts, ns = make_inputs(calls, SEED)
    pairs = list(zip(starts, ns, strict=True))
    starts64 = np.array(starts, dtype="datetime64[D]")
    ns_arr = np.array(ns, dtype=np.int64)
    scalar_starts64 = list(starts64)  # np.datetime64 scalars: numpy's cheapest scalar input

    build = timed(deadlines.WorkingCalendar, REPEATS)
    np_build = timed(build_numpy_calendar, REPEATS)
    cal = build_numpy_calendar()

    add = deadlines.add_working_days
    offset = np.busday_offset

    def run_casework() -> list[dt.date]:
        return [add(d, n) for d, n in pairs]

    def run_numpy_scalar() -> list[np.datetime64]:
        return [
            offset(s, n, roll="backward", busdaycal=cal)
            for s, n in zip(scalar_starts64, ns, strict=True)
        ]

    def run_numpy_scalar_dates() -> list[dt.date]:
        # What application code would write: date in, date out.
        return [offset(d, n, roll="backward", busdaycal=cal).astype(dt.date) for d, n in pairs]

    def run_numpy_vector() -> np.ndarray:
        return offset(starts64, ns_arr, roll="backward", busdaycal=cal)

    def run_empty_loop() -> list[tuple[dt.date, int]]:
        return [(d, n) for d, n in pairs]

    t_cw = timed(run_casework, REPEATS)
    t_np = timed(run_numpy_scalar, REPEATS)
    t_np_dates = timed(run_numpy_scalar_dates, REPEATS)
    t_vec = timed(run_numpy_vector, REPEATS)
    t_empty = timed(run_empty_loop, REPEATS)

    # Agreement on every input with n >= 1 (numpy's backward roll differs only at n == 0
    # on a non-working start, where casework returns the start date itself).
    ours = run_casework()
    theirs = run_numpy_vector().astype(dt.date).tolist()
    scalar_theirs = [x.astype(dt.date) for x in run_numpy_scalar()]
    checked = [i for i, n in enumerate(ns) if n >= 1]
    disagree = [i for i in checked if ours[i] != theirs[i] or ours[i] != scalar_theirs[i]]
    zero = [i for i, n in enumerate(ns) if n == 0]
    zero_diff = sum(ours[i] != theirs[i] for i in zero)

    cw_best, cw_med = per_item(t_cw, calls)
    np_best, np_med = per_item(t_np, calls)
    npd_best, npd_med = per_item(t_np_dates, calls)
    vec_best, vec_med = per_item(t_vec, calls, unit=1e9)
    empty_best, empty_med = per_item(t_empty, calls)

    print(f"casework add_working_days vs numpy.busday_offset — python {sys.version.split()[0]},")
    print(f"numpy {np.__version__}, holidays {holidays.__version__}; {calls:,} calls,")
    print(f"n uniform 0..39, starts uniform {FIRST}..{LAST}; {REPEATS} repeats (best / median)")
    print()
    print("one-off build")
    print(
        f"  WorkingCalendar() (index 2000-2100)      "
        f"{min(build) * 1e3:8.1f} ms / {statistics.median(build) * 1e3:8.1f} ms"
    )
    print(
        f"  np.busdaycalendar (holidays 2000-2100)   "
        f"{min(np_build) * 1e3:8.1f} ms / {statistics.median(np_build) * 1e3:8.1f} ms"
    )
    print()
    print("per call (includes the list-comprehension loop)")
    print(f"  casework.deadlines.add_working_days      {cw_best:8.3f} µs / {cw_med:8.3f} µs")
    print(f"  np.busday_offset scalar (datetime64 in)  {np_best:8.3f} µs / {np_med:8.3f} µs")
    print(f"  np.busday_offset scalar (date in/out)    {npd_best:8.3f} µs / {npd_med:8.3f} µs")
    print(f"  np.busday_offset vectorised, per item    {vec_best:8.1f} ns / {vec_med:8.1f} ns")
    print(f"  loop overhead alone (for reference)      {empty_best:8.3f} µs / {empty_med:8.3f} µs")
    print()
    print(
        f"agreement (n >= 1): {len(checked) - len(disagree):,} / {len(checked):,} identical"
        f" ({len(disagree)} differ)"
    )
    print(
        f"n == 0: {len(zero):,} inputs, {zero_diff:,} differ"
        " (expected: non-working starts, numpy rolls back)"
    )
    for i in disagree[:10]:
        print(f"  DIFFER start={starts[i]} n={ns[i]} casework={ours[i]} numpy={theirs[i]}")

    ratio = np_best / cw_best
    if figures is not None:
        figures.update(casework_us=cw_best, numpy_us=np_best, disagree=len(disagree))
    verdict = "MET" if cw_best <= np_best else "NOT MET"
    print()
    print(
        f"target: no slower than numpy per call — {verdict}: casework {cw_best:.3f} µs vs"
        f" numpy scalar {np_best:.3f} µs (numpy/casework = {ratio:.1f}x)"
    )
    return 0 if not disagree and cw_best <= np_best else 1


if __name__ == "__main__":
    sys.exit(main())
