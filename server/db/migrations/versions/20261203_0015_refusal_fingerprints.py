"""refusal fingerprints: a refusal sent again is one row, also for a document pushed without _rev
(whose NULL rev made uq_refusal record it again on every retry)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 19:00:00
"""

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_HASHED = ("username", "doc_id", "rev", "rule", "field", "reason_en", "grid_code", "micro_grid_code")
_LENGTHS = {
    "username": 64,
    "doc_id": 200,
    "rev": 200,
    "rule": 48,
    "field": 200,
    "grid_code": 32,
    "micro_grid_code": 32,
}
"""The columns' lengths: SQLite rows recorded before values were fitted may hold longer ones."""


def _fitted(column: str, value: str | None) -> str | None:
    """As ``server.refusals`` fits a value before it is stored (see ``_fingerprint``)."""
    if value is None:
        return None
    text = value.replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    length = _LENGTHS.get(column)
    return text[:length] if length else text


def _fingerprint(values: Sequence[str | None]) -> str:
    """As ``server.refusals`` computes it on the day of this migration, over the fitted values of
    ``_HASHED`` (a migration keeps its own copy): a retry after the upgrade finds the row."""
    fitted = [_fitted(column, value) or "" for column, value in zip(_HASHED, values, strict=True)]
    return hashlib.sha256(json.dumps(fitted, ensure_ascii=False).encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("refusals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT id, username, doc_id, rev, rule, field, reason_en, grid_code, micro_grid_code "
            "FROM refusals ORDER BY id"
        )
    )
    first_of: dict[str, int] = {}
    for refusal_id, *values in rows.all():
        key = _fingerprint(values)
        first = first_of.setdefault(key, refusal_id)
        if first == refusal_id:
            connection.execute(
                sa.text("UPDATE refusals SET fingerprint = :key WHERE id = :id"), {"key": key, "id": first}
            )
            continue
        # A retry recorded before: the first copy stays, filed under every area any copy was.
        connection.execute(
            sa.text(
                "INSERT INTO refusal_areas (refusal_id, code) SELECT :first, code FROM refusal_areas "
                "WHERE refusal_id = :copy AND code NOT IN "
                "(SELECT code FROM refusal_areas WHERE refusal_id = :first)"
            ),
            {"first": first, "copy": refusal_id},
        )
        connection.execute(sa.text("DELETE FROM refusal_areas WHERE refusal_id = :id"), {"id": refusal_id})
        connection.execute(sa.text("DELETE FROM refusals WHERE id = :id"), {"id": refusal_id})
    with op.batch_alter_table("refusals", schema=None) as batch_op:
        batch_op.create_index("uq_refusal_fingerprint", ["fingerprint"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("refusals", schema=None) as batch_op:
        batch_op.drop_index("uq_refusal_fingerprint")
        batch_op.drop_column("fingerprint")
