"""merge engine: case links, conflicts, feed leases, worker heartbeats

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 15:23:11.365667
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("matched_finding", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("matched_author", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("gap_s", sa.Float(), nullable=True),
        sa.Column("radius_m", sa.Float(), nullable=True),
        sa.Column("window_h", sa.Float(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_links_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_links_finding_id"), ["finding_id"], unique=False)

    op.create_table(
        "conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("doc_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("source_db", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("grid_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("winner_rev", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("leaves_key", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
        sa.Column("ancestor_rev", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("branches", sa.JSON(), nullable=False),
        sa.Column("ancestor", sa.JSON(), nullable=True),
        sa.Column("result_rev", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("doc_id", "leaves_key", name="uq_conflict_leaves"),
    )
    with op.batch_alter_table("conflicts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conflicts_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_conflicts_doc_id"), ["doc_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_conflicts_grid_code"), ["grid_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_conflicts_status"), ["status"], unique=False)

    op.create_table(
        "feed_leases",
        sa.Column("source_db", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_db"),
    )
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_errors", sa.Integer(), nullable=False),
        sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker_id"),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index("ix_findings_concern_lat_lon", ["concern_code", "lat", "lon"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index("ix_findings_concern_lat_lon")
    op.drop_table("worker_heartbeats")
    op.drop_table("feed_leases")
    with op.batch_alter_table("conflicts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conflicts_status"))
        batch_op.drop_index(batch_op.f("ix_conflicts_grid_code"))
        batch_op.drop_index(batch_op.f("ix_conflicts_doc_id"))
        batch_op.drop_index(batch_op.f("ix_conflicts_case_id"))

    op.drop_table("conflicts")
    with op.batch_alter_table("case_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_links_finding_id"))
        batch_op.drop_index(batch_op.f("ix_case_links_case_id"))

    op.drop_table("case_links")
