"""function: lock cases, then read their audit chains' ends (PostgreSQL)

Revision ID: 0017_locked_chain_ends
Revises: 0016_provider_access_index
Create Date: 2026-12-01 11:30:00.000000

Each audit row is sealed with the hash of the row before it on its case, read while
the case row is locked so two writers take turns. Done as ONE statement (``SELECT ...
(SELECT hash ...) FROM cases ... FOR UPDATE``), a writer that had to wait for the lock
read the chain's end as it was when its statement began, before the other writer's
row: READ COMMITTED takes one snapshot per statement. Both rows then named the same
predecessor and ``audit verify`` reported a break nobody made (a page view, a note or
the sweep writing while another writer held the case).

This function takes the locks first (in id order, as before) and then reads the ends:
a VOLATILE function takes a fresh snapshot for each statement it runs, so the read
sees every row committed before the lock was granted. One round trip still, so the
case page and a transition keep their statement counts. SQLite needs none of this:
its writers take turns for the whole transaction.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_locked_chain_ends"
down_revision: str | None = "0016_provider_access_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE OR REPLACE FUNCTION casework_locked_chain_ends(case_ids integer[])
RETURNS TABLE (chain_case_id integer, chain_end varchar)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM cases c WHERE c.id = ANY(case_ids) ORDER BY c.id FOR UPDATE OF c;
    RETURN QUERY
        SELECT c.id,
               (SELECT e.hash FROM case_events e
                 WHERE e.case_id = c.id ORDER BY e.id DESC LIMIT 1)::varchar
          FROM cases c
         WHERE c.id = ANY(case_ids)
         ORDER BY c.id;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS casework_locked_chain_ends(integer[])")
