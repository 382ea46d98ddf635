"""Which documents take the emergency fast path (they skip the queue at the gateway and worker)."""

from collections.abc import Mapping
from typing import Any

from field_schema._errors import DocumentInvalid
from field_schema._registry import EMERGENCY_TYPES, upgrade
from field_schema._taxonomy import Severity, Taxonomy

__all__ = ["is_urgent"]


def is_urgent(doc: Mapping[str, Any], taxonomy: Taxonomy) -> bool:
    """Missing-person alerts always; a hazard when marked urgent, or unmarked with an urgent concern."""
    if doc.get("type") in EMERGENCY_TYPES:
        return True
    if doc.get("type") != "hazard":
        return False
    try:
        current = upgrade(doc)
    except DocumentInvalid:
        return False
    severity = current.get("severity")
    if severity is not None:
        return bool(severity == Severity.URGENT)
    concern = taxonomy.concern(str(current.get("concern_code")))
    return concern is not None and concern.default_severity is Severity.URGENT
