"""lean indexes and case search: drop indexes no query needs, add the case list's search rows,
bounding-box and overdue indexes

- cases: ix_cases_grid_code, ix_cases_state and ix_cases_created_at are prefixes of the
  (grid|state|created_at, created_at, id) indexes; ix_cases_intake_grid becomes partial (only
  unassigned cases, the only ones its query reads); ix_cases_open_deadline_at gains the id
  (overdue + department checks need no table row); new ix_cases_lat_lon for the bounding box.
- findings: ix_findings_author (no query) and ix_findings_concern_lat_lon (the join search of an
  earlier merge engine; candidates now come through cases) go.
- case_links: ix_case_links_case_id and ix_case_links_finding_id go (no query reads them).
- case_search: one row per case (summary, case number, notes), filled here for existing cases.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 12:00:00
"""

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEPARATOR = "\x1f"  # server.db.models.SEARCH_SEPARATOR when this migration was written
_UNASSIGNED = sa.text("grid_code IS NULL")


def _fill_case_search() -> None:
    """Rows for the cases already there: number, summary and every note (repeats do no harm)."""
    connection = op.get_bind()
    notes: dict[str, list[str]] = defaultdict(list)
    for case_id, note in connection.execute(
        sa.text("SELECT case_id, note FROM findings WHERE case_id IS NOT NULL")
    ):
        if note:
            notes[case_id].append(note)
    cases = connection.execute(
        sa.text("SELECT id, grid_code, intake_grid, case_no, summary FROM cases")
    ).all()
    rows = [
        {
            "scope_grid": grid_code if grid_code is not None else (intake_grid or ""),
            "case_id": case_id,
            "content": _SEPARATOR.join([case_no, summary or "", *notes[case_id]]),
        }
        for case_id, grid_code, intake_grid, case_no, summary in cases
    ]
    insert = sa.text(
        "INSERT INTO case_search (scope_grid, case_id, content) VALUES (:scope_grid, :case_id, :content)"
    )
    for start in range(0, len(rows), 5000):
        connection.execute(insert, rows[start : start + 5000])


def upgrade() -> None:
    op.drop_index("ix_cases_grid_code", table_name="cases")
    op.drop_index("ix_cases_state", table_name="cases")
    op.drop_index("ix_cases_created_at", table_name="cases")
    op.drop_index("ix_cases_intake_grid", table_name="cases")
    op.drop_index("ix_cases_open_deadline_at", table_name="cases")
    op.create_index(
        "ix_cases_unassigned_intake",
        "cases",
        ["intake_grid"],
        unique=False,
        sqlite_where=_UNASSIGNED,
        postgresql_where=_UNASSIGNED,
    )
    op.create_index("ix_cases_open_deadline_id", "cases", ["open_deadline_at", "id"], unique=False)
    op.create_index("ix_cases_lat_lon", "cases", ["lat", "lon"], unique=False)
    op.drop_index("ix_findings_author", table_name="findings")
    op.drop_index("ix_findings_concern_lat_lon", table_name="findings")
    op.drop_index("ix_case_links_case_id", table_name="case_links")
    op.drop_index("ix_case_links_finding_id", table_name="case_links")
    op.create_table(
        "case_search",
        sa.Column("scope_grid", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("scope_grid", "case_id"),
        sa.UniqueConstraint("case_id", name="uq_case_search_case"),
        sqlite_with_rowid=False,
    )
    _fill_case_search()


def downgrade() -> None:
    op.drop_table("case_search")
    op.create_index("ix_case_links_finding_id", "case_links", ["finding_id"], unique=False)
    op.create_index("ix_case_links_case_id", "case_links", ["case_id"], unique=False)
    op.create_index("ix_findings_concern_lat_lon", "findings", ["concern_code", "lat", "lon"], unique=False)
    op.create_index("ix_findings_author", "findings", ["author"], unique=False)
    op.drop_index("ix_cases_lat_lon", table_name="cases")
    op.drop_index("ix_cases_open_deadline_id", table_name="cases")
    op.drop_index("ix_cases_unassigned_intake", table_name="cases")
    op.create_index("ix_cases_open_deadline_at", "cases", ["open_deadline_at"], unique=False)
    op.create_index("ix_cases_intake_grid", "cases", ["intake_grid"], unique=False)
    op.create_index("ix_cases_created_at", "cases", ["created_at"], unique=False)
    op.create_index("ix_cases_state", "cases", ["state"], unique=False)
    op.create_index("ix_cases_grid_code", "cases", ["grid_code"], unique=False)
