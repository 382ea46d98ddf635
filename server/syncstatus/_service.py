"""What a user's sync really looks like from the server: when each of their tablets last finished a
push or pull batch (its checkpoint), and how many changes still wait for them on the server.

PouchDB writes a checkpoint (``_local/<replication id>``) on the gateway after every batch it
stored, in both directions. A pull checkpoint holds one of our sequence tokens; a push checkpoint
holds the tablet's own sequence. Pending changes are counted from each pull checkpoint with the
same scoped feed the tablet reads, so the number is exactly what that tablet would download.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from server.auth import Principal
from server.db.models import LocalDoc, Refusal, User, as_utc
from server.gateway import user_view
from server.runtime import Runtime

__all__ = ["PENDING_CAP", "ReplicationState", "SyncStatus", "sync_status"]

PENDING_CAP = 10_000


@dataclass(frozen=True)
class ReplicationState:
    checkpoint_id: str
    direction: str
    """pull (server → tablet) or push (tablet → server)."""
    last_checkpoint_at: datetime
    pending_docs: int | None
    """Pull only: changes on the server after this checkpoint (capped at ``PENDING_CAP``)."""


@dataclass(frozen=True)
class SyncStatus:
    username: str
    last_pull_at: datetime | None
    last_push_at: datetime | None
    pending_docs: int | None
    pending_capped: bool
    replications: list[ReplicationState]
    refusals: int
    last_refusal_at: datetime | None


def _direction(body: dict[str, Any]) -> str:
    last_seq = body.get("last_seq")
    return "pull" if isinstance(last_seq, str) and last_seq.startswith("gp1-") else "push"


async def sync_status(runtime: Runtime, user: User) -> SyncStatus:
    virtual_db = runtime.settings.gateway.virtual_db
    async with runtime.sessions() as session:
        checkpoints = (
            await session.exec(
                select(LocalDoc).where(col(LocalDoc.owner) == user.username, col(LocalDoc.db) == virtual_db)
            )
        ).all()
        refusal_count, last_refusal = (
            await session.exec(
                select(func.count(), func.max(Refusal.created_at)).where(
                    col(Refusal.username) == user.username
                )
            )
        ).one()
    view = user_view(runtime, Principal.of(user))
    replications = []
    for checkpoint in sorted(checkpoints, key=lambda c: as_utc(c.updated_at), reverse=True):
        direction = _direction(checkpoint.body)
        pending = None
        if direction == "pull":
            pending = await view.count_changes(str(checkpoint.body.get("last_seq")), cap=PENDING_CAP)
        replications.append(
            ReplicationState(
                checkpoint_id=checkpoint.doc_id,
                direction=direction,
                last_checkpoint_at=as_utc(checkpoint.updated_at),
                pending_docs=pending,
            )
        )
    pulls = [r for r in replications if r.direction == "pull"]
    pushes = [r for r in replications if r.direction == "push"]
    if pulls:
        pending_docs: int | None = pulls[0].pending_docs
    else:
        pending_docs = await view.count_changes(None, cap=PENDING_CAP)
    return SyncStatus(
        username=user.username,
        last_pull_at=pulls[0].last_checkpoint_at if pulls else None,
        last_push_at=pushes[0].last_checkpoint_at if pushes else None,
        pending_docs=pending_docs,
        pending_capped=pending_docs is not None and pending_docs >= PENDING_CAP,
        replications=replications,
        refusals=int(refusal_count or 0),
        last_refusal_at=as_utc(last_refusal) if last_refusal is not None else None,
    )
