"""The refusals a use case can give. Each says, in words, what to do next.

They carry no exit code and no HTTP status: each door maps the class to its own
answer (the CLI to an exit code, the API to a status, the pages to a form error),
so a rule refused in one place reads the same through every door.
"""

from __future__ import annotations


class CaseworkError(Exception):
    """A refusal a person can act on; ``str()`` says what to do."""


class NotFound(CaseworkError):
    """No such record, or none this person may see (both read the same on purpose)."""


class ValidationFailed(CaseworkError):
    """Bad input; ``field`` names it so a form can show the message beside it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ValueMissing(ValidationFailed):
    """A value the step needs was not given; ``field`` always names it.

    Its own class so a door can say HOW to give the value in its own terms (the CLI:
    ``--set reason="..."``) while the words stay the rule's, the same through every door.
    """

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, field)
        self.field: str = field


class ValuesUnknown(ValidationFailed):
    """Values given that the step does not take (a typo, most often); ``takes`` lists
    what it does take, as (name, words) pairs.

    Its own class so a door where people type the names (the CLI's ``--set NAME=...``)
    can list the names to type; the words stay the rule's at every door.
    """

    def __init__(self, message: str, field: str, takes: tuple[tuple[str, str], ...]) -> None:
        super().__init__(message, field)
        self.field: str = field
        self.takes = takes


class TransitionRefused(CaseworkError):
    """The step is not possible now; ``allowed`` lists the steps that are.

    ``reopenable``: refused only because the case (``reference``) is closed or
    withdrawn, which a manager can undo; a door may then say how to reopen it in its
    own terms.
    """

    def __init__(
        self,
        message: str,
        allowed: list[str] | None = None,
        *,
        reopenable: bool = False,
        reference: str = "",
    ) -> None:
        super().__init__(message)
        self.allowed = allowed or []
        self.reopenable = reopenable
        self.reference = reference


class NotPermitted(CaseworkError):
    """The person may see the case but this step is someone else's to record."""


class Conflict(CaseworkError):
    """Someone else changed the case first; reload and try again."""


class WriteRefusedAfterRead(Conflict):
    """SQLite refused the transaction's first write: another writer committed after it
    read (its snapshot went stale), whatever that writer changed, perhaps another case.

    Still a Conflict for a caller that cannot run its step again; one that can (see
    :func:`casework.cases.advance.record_step` and
    :func:`casework.cases.unit.runs_again_as_writer`) re-runs it as a writer from the
    start. ``versions_read``: each case's version as the refused attempt read it, so the
    second run is held to them.
    """

    def __init__(self, message: str, versions_read: dict[int, int] | None = None) -> None:
        super().__init__(message)
        self.versions_read = versions_read or {}
