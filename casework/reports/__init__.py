"""Reports for managers and commissioners: timeliness of every clock, flow, SEN2 figures.

``queries`` holds the SQL aggregations, ``formatting`` the words, suppression and
CSV, ``charts`` the server-rendered SVG charts. The CLI, the API and the pages all
call the same functions, so a figure is the same number wherever it is read.
"""

from casework.reports.queries import (
    ALL_PROVIDERS,
    FlowReport,
    Period,
    Sen2,
    TimelinessRow,
    cases_behind,
    flow,
    sen2,
    timeliness,
    timeliness_by_month,
)

__all__ = [
    "ALL_PROVIDERS",
    "FlowReport",
    "Period",
    "Sen2",
    "TimelinessRow",
    "cases_behind",
    "flow",
    "sen2",
    "timeliness",
    "timeliness_by_month",
]
