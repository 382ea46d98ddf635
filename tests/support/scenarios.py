"""The broken-link scenario (issue 7) shared by its test and ``bench.broken_link``: a volunteer's
findings with photos, moved over a link that cuts connections, until the sync completes."""

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from field_schema.demo_data import make_png
from server.db.models import Finding
from tests.support.docs import hazard
from tests.support.stack import Stack
from tests.support.tablet import Tablet, TabletError

__all__ = ["Attempts", "field_docs", "findings_per_case", "real_bytes", "sync_until_complete"]

PHOTO_SIDE_FOR_100KB = 183  # a noisy RGB PNG of 183 × 183 is about 100 KB


def field_docs(
    count: int, photos: int, *, author: str = "vol1", photo_side: int = PHOTO_SIDE_FOR_100KB
) -> list[dict[str, Any]]:
    """``count`` findings, the first ``photos`` of them with one photo each, deterministic ids."""
    docs = []
    for i in range(count):
        doc = hazard(author, doc_id=f"bl-{i:05d}", photo=False, note=f"巡查记录 {i}")
        doc["observed_at"] = "2026-11-20T09:00:00+08:00"
        if i < photos:
            png = make_png(photo_side, photo_side, seed=i)
            doc["_attachments"] = {
                "photo.png": {"content_type": "image/png", "data": base64.b64encode(png).decode()}
            }
        docs.append(doc)
    return docs


def real_bytes(docs: list[dict[str, Any]]) -> int:
    """The data a sync must move at least once: document bodies and photo bytes."""
    total = 0
    for doc in docs:
        attachments = doc.get("_attachments") or {}
        total += len(json.dumps({k: v for k, v in doc.items() if k != "_attachments"}).encode())
        total += sum(len(base64.b64decode(a["data"])) for a in attachments.values())
    return total


@dataclass
class Attempts:
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.runs)

    @property
    def last(self) -> dict[str, Any]:
        return self.runs[-1]


async def sync_until_complete(
    tablet: Tablet, op: str, *, batch_size: int = 100, max_attempts: int = 500
) -> Attempts:
    """Repeat a one-shot push or pull, as a tablet app does when the link comes back, until it completes."""
    attempts = Attempts()
    for _ in range(max_attempts):
        try:
            result = await tablet.call(op, options={"batch_size": batch_size})
        except TabletError as exc:
            attempts.runs.append({"ok": False, "error": exc.error})
            continue
        attempts.runs.append(result)
        if result.get("ok") and not result.get("errors"):
            return attempts
    raise AssertionError(f"{op} never completed in {max_attempts} attempts: {attempts.runs[-3:]}")


async def findings_per_case(stack: Stack) -> dict[str, int]:
    """How many findings each case holds (every finding is in exactly one case)."""
    async with stack.runtime.sessions() as session:
        rows = (await session.exec(select(Finding.case_id, func.count()).group_by(Finding.case_id))).all()
    return {str(case_id): int(count) for case_id, count in rows}
