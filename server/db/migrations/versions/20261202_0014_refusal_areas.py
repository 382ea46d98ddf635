"""refusal areas: a refusal is filed under every grid and micro-grid it concerns (its author's scope
and where the document lies), not under its author's first grid; refusals.micro_grid_code

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refusals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("micro_grid_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
    op.create_table(
        "refusal_areas",
        sa.Column("refusal_id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.ForeignKeyConstraint(["refusal_id"], ["refusals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("refusal_id", "code"),
    )
    with op.batch_alter_table("refusal_areas", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refusal_areas_code"), ["code"], unique=False)
    # Refusals recorded so far stay with the leaders who saw them: those of the author's first grid.
    op.execute(
        "INSERT INTO refusal_areas (refusal_id, code) "
        "SELECT id, grid_code FROM refusals WHERE grid_code IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("refusal_areas", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refusal_areas_code"))
    op.drop_table("refusal_areas")
    with op.batch_alter_table("refusals", schema=None) as batch_op:
        batch_op.drop_column("micro_grid_code")
