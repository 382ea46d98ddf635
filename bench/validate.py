"""Schema validation throughput per document type (and version), with the taxonomy checks.

``python -m bench.validate [--quick]``. Demo documents of every type (10,000 per type; quick:
2,000) go through ``validate_document`` as the gateway calls it. The baseline, in the same run, is
the bare pydantic model of each document (``Model.model_validate``): the floor our registry builds
on, so the ratio (throughput ours / bare, geometric mean over types) shows what dispatch and the
taxonomy checks cost. The target is what a
busy sync needs, per type: 300 volunteers coming back online with 200 documents each must validate
within a minute on one core (1,000 documents/s); invalid documents (error path) are measured too.
"""

import math
import sys
from collections import defaultdict
from functools import partial
from typing import Any

from bench._common import best_of, best_of_interleaved, emit, machine, parse_args
from field_schema import DOCUMENT_TYPES, DocumentInvalid, Taxonomy, load_taxonomy, validate_document
from field_schema.demo_data import DEMO_TYPES, demo_documents
from geo import load_areas
from geo.demo_district import DEMO_GRID_FILE

TARGET_DOCS_PER_S = 1_000
FULL, QUICK = 10_000, 2_000


def documents(per_type: int, seed: int, taxonomy: Taxonomy) -> dict[str, list[dict[str, Any]]]:
    """Valid documents grouped as ``type.vN`` (photos left out: attachments are not validated here)."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    counts = dict.fromkeys(DEMO_TYPES, per_type)
    for item in demo_documents(
        load_areas(DEMO_GRID_FILE), taxonomy, {}, counts=counts, seed=seed, photo_every=0
    ):
        grouped[f"{item.doc['type']}.v{item.doc['schema_version']}"].append(item.doc)
    return dict(sorted(grouped.items()))


def through_registry(docs: list[dict[str, Any]], taxonomy: Taxonomy) -> int:
    for doc in docs:
        validate_document(doc, taxonomy)
    return len(docs)


def bare_pydantic(docs: list[dict[str, Any]]) -> int:
    for doc in docs:
        model = DOCUMENT_TYPES[doc["type"]].versions[doc["schema_version"]]
        model.model_validate({k: v for k, v in doc.items() if not k.startswith("_")})
    return len(docs)


def invalid(docs: list[dict[str, Any]], taxonomy: Taxonomy) -> int:
    refused = 0
    for doc in docs:
        try:
            validate_document(doc, taxonomy)
        except DocumentInvalid:
            refused += 1
    return refused


def main() -> int:
    args = parse_args(__doc__ or "")
    per_type = QUICK if args.quick else FULL
    taxonomy = load_taxonomy()
    groups = documents(per_type, args.seed, taxonomy)
    figures: dict[str, Any] = {}
    ratios: list[float] = []
    print(f"machine: {machine()}")
    print(f"{'type':<22}{'docs':>8}{'docs/s':>12}{'bare pydantic/s':>18}{'ratio':>8}")
    for name, docs in groups.items():
        ours, bare = best_of_interleaved(
            5, partial(through_registry, docs, taxonomy), partial(bare_pydantic, docs)
        )
        ratios.append(bare / ours)
        figures[name] = {
            "docs": len(docs),
            "docs_per_s": round(len(docs) / ours),
            "bare_docs_per_s": round(len(docs) / bare),
        }
        print(
            f"{name:<22}{len(docs):>8}{len(docs) / ours:>12,.0f}{len(docs) / bare:>18,.0f}{bare / ours:>8.2f}"
        )
    broken = [dict(doc, location={**doc["location"], "lat": 123}) for doc in groups["hazard.v2"]]
    seconds, refused = best_of(3, lambda: invalid(broken, taxonomy))
    assert refused == len(broken)
    figures["hazard.v2 invalid"] = {"docs": len(broken), "docs_per_s": round(len(broken) / seconds)}
    print(f"{'hazard.v2 invalid':<22}{len(broken):>8}{len(broken) / seconds:>12,.0f}")
    slowest = min(f["docs_per_s"] for f in figures.values())
    figures["min_docs_per_s"] = slowest
    ratio = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    verdict = "met" if slowest >= TARGET_DOCS_PER_S else "NOT met"
    print(
        f"ratio registry / bare pydantic (geometric mean over types): {ratio:.2f}; "
        f"slowest {slowest:,} docs/s; target {TARGET_DOCS_PER_S:,} docs/s per type: {verdict}"
    )
    emit("validate", figures, ratio, TARGET_DOCS_PER_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
