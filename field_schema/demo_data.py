"""Deterministic demo documents (by seed) placed inside the demo grids, with real PNG photos.

``demo_documents`` makes every document type (used by ``gridpatrol demo``, tests and benchmarks);
``demo_hazards`` is the hazards-only shortcut kept for existing callers.
"""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from field_schema._demo_docs import DEMO_MIX, DEMO_TYPES, DemoDocument, demo_documents, mix_counts
from field_schema._demo_png import make_png
from field_schema._taxonomy import Taxonomy
from geo import Area

__all__ = [
    "DEMO_MIX",
    "DEMO_TYPES",
    "DemoDocument",
    "demo_documents",
    "demo_hazards",
    "make_png",
    "mix_counts",
]


def demo_hazards(
    areas: Sequence[Area],
    taxonomy: Taxonomy,
    authors_by_grid: Mapping[str, Sequence[str]],
    *,
    count: int,
    seed: int = 1,
    photo_every: int = 3,
    photo_side: int = 48,
) -> Iterator[dict[str, Any]]:
    """``count`` hazard findings over the micro-grids (v2; about one in ten from an old v1 tablet)."""
    for item in demo_documents(
        areas,
        taxonomy,
        authors_by_grid,
        counts={"hazard": count},
        seed=seed,
        photo_every=photo_every,
        photo_side=photo_side,
    ):
        yield item.doc
