"""How a refusal is written down: values fitted to the table's columns, filed under the grids and
micro-grids it concerns. No I/O."""

import pytest

from geo import Assignment, AssignmentStatus
from server.db.models import Refusal
from server.refusals import filed_under, fingerprint, fit_refusal

pytestmark = pytest.mark.unit

PARENT_OF = {"ZR01-01": "ZR01", "ZR01-02": "ZR01", "ZR02-01": "ZR02"}


def test_every_bounded_column_is_cut_to_its_own_length() -> None:
    table = Refusal.__table__  # type: ignore[attr-defined]
    columns = [c.name for c in table.c if c.name not in {"id", "created_at", "fingerprint"}]
    row = fit_refusal(dict.fromkeys(columns, "长" * 5000))
    for name in columns:
        length = table.c[name].type.length
        assert row[name] == "长" * (length or 5000), name
    assert {n for n in columns if table.c[n].type.length is None} == {"reason_zh", "reason_en"}


def test_characters_sql_cannot_store_are_dropped_or_replaced() -> None:
    row = fit_refusal({"device_id": "tab\x00let", "field": "_attachments.\ud800.jpg", "rev": None})
    assert row == {"device_id": "tablet", "field": "_attachments.?.jpg", "rev": None}
    # a NUL is dropped before the cut, so the value keeps its full length of real characters
    assert fit_refusal({"doc_id": "\x00" * 10 + "d" * 300})["doc_id"] == "d" * 200


def test_a_refusal_is_filed_under_its_authors_scope_and_where_the_document_lies() -> None:
    lies = Assignment(AssignmentStatus.ASSIGNED, "ZR02", "ZR02-01")
    assert filed_under(("ZR01", "ZR03"), PARENT_OF, lies) == {"ZR01", "ZR03", "ZR02", "ZR02-01"}
    # without a usable location: the author's scope only, micro-grids with their grid
    assert filed_under(("ZR01-02",), PARENT_OF, None) == {"ZR01-02", "ZR01"}
    # near a boundary: every grid the accuracy circle touches
    near = Assignment(AssignmentStatus.AMBIGUOUS, "ZR01", "ZR01-01", candidates=("ZR01", "ZR02"))
    assert filed_under((), PARENT_OF, near) == {"ZR01", "ZR01-01", "ZR02"}
    assert filed_under(("Z" * 40,), PARENT_OF, None) == {"Z" * 32}


def test_a_refusal_sent_again_has_the_same_fingerprint_and_another_refusal_another() -> None:
    refusal = {"username": "vol1", "doc_id": "d1", "rev": None, "rule": "unknown_concern", "field": "concern"}
    first = fingerprint({**refusal, "reason_en": "unknown concern 99-99", "device_id": "tab-1"})
    # the device it came from does not make it another refusal
    assert fingerprint({**refusal, "reason_en": "unknown concern 99-99"}) == first
    assert len(first) == Refusal.__table__.c.fingerprint.type.length  # type: ignore[attr-defined]
    for other in [
        {"reason_en": "unknown concern 98-98"},
        {"field": "lat"},
        {"rev": "1-abc"},
        {"username": "vol2"},
        {"rule": "outside_scope"},
        {"grid_code": "ZR02"},
        {"micro_grid_code": "ZR01-02"},
    ]:
        assert fingerprint({**refusal, "reason_en": "unknown concern 99-99", **other}) != first, other
