"""Who may read which report, and how much of it: one rule for the pages, the API and exports.

Managers and admins see every figure and the cases behind it; commissioners see
aggregates only, with numbers under 5 shown as "fewer than 5".
"""

from __future__ import annotations

from dataclasses import dataclass

from casework.cases.errors import NotPermitted
from casework.models import Role, User
from casework.reports import formatting as fmt

FULL_ROLES = frozenset({Role.manager, Role.admin})
REPORT_ROLES = FULL_ROLES | {Role.commissioner}
DOWNLOADS = ("figures", "timeliness", "months", "flow", "sen2", "cases")


@dataclass(frozen=True)
class Audience:
    """Who is reading: managers see everything, commissioners aggregates only."""

    full: bool

    @property
    def suppress(self) -> bool:
        return not self.full

    def count(self, n: int) -> str:
        return fmt.count_text(n, suppress=self.suppress)

    def derived(self, value: float | None, base: int, unit: str) -> str:
        return fmt.derived_text(value, base, unit, suppress=self.suppress)

    def chartable(self, *values: float) -> bool:
        """A commissioner's chart never draws a bar from 1 to 4 cases."""
        return self.full or all(v == 0 or v >= fmt.SMALL for v in values)


def audience_for(user: User) -> Audience:
    if user.role in FULL_ROLES:
        return Audience(full=True)
    if user.role == Role.commissioner:
        return Audience(full=False)
    raise NotPermitted("Reports are for IAS managers and for the commissioners of the service.")


MEASURES = ("due", "met_on_time", "met_late", "missed", "missed_still_open", "open", "cancelled")
