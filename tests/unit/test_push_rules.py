"""The gateway's per-document push decisions, without any I/O."""

import base64
from typing import Any

import pytest
from shapely.geometry.base import BaseGeometry

from field_schema import load_taxonomy
from geo import GridIndex, load_areas
from geo.demo_district import DEMO_GRID_FILE
from server.auth import Principal
from server.db.models import Role
from server.gateway._rules import Placement, PushContext, Refusal, decide_foreign, decide_push, locate_batch
from server.gateway._scope import Lane, Source, alert_source, scope_grids
from server.settings import Settings
from tests.support.docs import (
    ZR01_POINT,
    ZR02_POINT,
    follow_up,
    hazard,
    installation,
    missing_person,
    visit,
)

pytestmark = pytest.mark.unit

INDEX = GridIndex(load_areas(DEMO_GRID_FILE))
COUCH = Settings.from_env({}).couch
REF = Source("ref", "gp_reference", None, Lane.REFERENCE)
ZR01 = Source("ZR01", "gp_grid_zr01", "ZR01")
ZR02 = Source("ZR02", "gp_grid_zr02", "ZR02")


def _ctx(
    role: Role = Role.VOLUNTEER, username: str = "vol1", sources: tuple[Source, ...] = (REF, ZR01)
) -> PushContext:
    principal = Principal(id=1, username=username, role=role, grids=tuple(s.grid for s in sources if s.grid))
    return PushContext(
        principal, list(sources), INDEX, load_taxonomy(), max_attachment_bytes=8192, couch=COUCH
    )


def test_valid_new_finding_goes_to_its_grid_database() -> None:
    decision = decide_push(hazard("vol1"), None, None, _ctx())
    assert decision == Placement(ZR01)


def test_finding_in_another_grid_is_refused_naming_the_grid() -> None:
    decision = decide_push(hazard("vol1", point=ZR02_POINT), None, None, _ctx())
    assert isinstance(decision, Refusal)
    assert decision.rule == "outside_scope"
    assert decision.field == "location"
    assert "清涧网格" in decision.reason_zh


def test_author_must_be_the_signed_in_user() -> None:
    decision = decide_push(hazard("someone-else"), None, None, _ctx())
    assert isinstance(decision, Refusal)
    assert (decision.rule, decision.field) == ("author_mismatch", "author")


def test_volunteer_may_edit_only_own_documents() -> None:
    stored = hazard("vol1b")
    incoming = dict(stored, note="改了")
    decision = decide_push(incoming, stored, ZR01, _ctx())
    assert isinstance(decision, Refusal)
    assert decision.rule == "not_own_document"
    leader = decide_push(incoming, stored, ZR01, _ctx(Role.GRID_LEADER, "lead1"))
    assert leader == Placement(ZR01)


def test_author_cannot_be_rewritten() -> None:
    stored = hazard("vol1b")
    decision = decide_push(dict(stored, author="lead1"), stored, ZR01, _ctx(Role.GRID_LEADER, "lead1"))
    assert isinstance(decision, Refusal)
    assert decision.rule == "author_immutable"


def test_nobody_pushes_case_status_or_reference_documents() -> None:
    status = {"_id": "status:x", "type": "case_status", "schema_version": 1}
    decision = decide_push(status, None, None, _ctx(Role.GRID_LEADER, "lead1"))
    assert isinstance(decision, Refusal) and decision.rule == "server_only_type"
    grid_doc = {"_id": "grid:ZR01", "type": "grid_outline"}
    ref = decide_push(grid_doc, grid_doc, REF, _ctx())
    assert isinstance(ref, Refusal) and ref.rule == "reference_read_only"


def test_invalid_document_reason_names_the_field() -> None:
    doc = hazard("vol1")
    doc["location"]["lat"] = 123
    decision = decide_push(doc, None, None, _ctx())
    assert isinstance(decision, Refusal)
    assert decision.rule == "invalid_document"
    assert decision.field == "location.lat"
    assert "location.lat" in decision.reason_zh and "location.lat" in decision.reason_en


def test_photos_are_checked_by_content_and_size() -> None:
    fake = hazard("vol1", photo=False)
    fake["_attachments"] = {
        "photo.jpg": {
            "content_type": "image/jpeg",
            "data": base64.b64encode(b"%PDF-1.4 not a photo").decode(),
        }
    }
    decision = decide_push(fake, None, None, _ctx())
    assert isinstance(decision, Refusal) and decision.rule == "attachment_type"
    assert decision.field == "_attachments.photo.jpg"
    big = hazard("vol1", photo=False)
    big["_attachments"] = {
        "p.png": {
            "content_type": "image/png",
            "data": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 9000).decode(),
        }
    }
    too_large = decide_push(big, None, None, _ctx())
    assert isinstance(too_large, Refusal) and too_large.rule == "attachment_too_large"
    exact = hazard("vol1", photo=False)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * (8192 - 8)
    exact["_attachments"] = {"p.png": {"content_type": "image/png", "data": base64.b64encode(png).decode()}}
    assert decide_push(exact, None, None, _ctx()) == Placement(ZR01)  # 8192 bytes: at the limit
    exact["_attachments"]["p.png"]["data"] = base64.b64encode(png + b"0").decode()
    too_large = decide_push(exact, None, None, _ctx())
    assert isinstance(too_large, Refusal) and too_large.rule == "attachment_too_large"
    stub = hazard("vol1", photo=False)
    stub["_attachments"] = {"p.png": {"stub": True, "digest": "md5-x", "content_type": "image/png"}}
    assert decide_push(stub, None, None, _ctx()) == Placement(ZR01)


def test_deleting_someone_elses_finding_is_refused() -> None:
    stored = hazard("vol1b")
    tombstone = {"_id": stored["_id"], "_rev": "2-x", "_deleted": True}
    decision = decide_push(tombstone, stored, ZR01, _ctx())
    assert isinstance(decision, Refusal) and decision.rule == "not_own_document"
    own = decide_push(tombstone, hazard("vol1"), ZR01, _ctx())
    assert own == Placement(ZR01)


def test_a_coordinator_keeps_installations_up_but_changes_no_one_elses_findings() -> None:
    coordinator = _ctx(Role.COORDINATOR, "coord")
    facility = installation("vol1b", state="planned")
    assert decide_push(dict(facility, state="installed"), facility, ZR01, coordinator) == Placement(ZR01)
    retired = {"_id": facility["_id"], "_rev": "2-x", "_deleted": True}
    assert decide_push(retired, facility, ZR01, coordinator) == Placement(ZR01)
    # an installation record is not made into something else
    as_hazard = decide_push({**hazard("vol1b"), "_id": facility["_id"]}, facility, ZR01, coordinator)
    assert isinstance(as_hazard, Refusal) and as_hazard.rule == "not_own_document"

    finding = hazard("vol1b")
    edited = decide_push(dict(finding, note="协调员改写"), finding, ZR01, coordinator)
    assert isinstance(edited, Refusal) and (edited.rule, edited.field) == ("not_own_document", "author")
    assert "协调员只能修改安装记录" in edited.reason_zh and "vol1b" in edited.reason_en
    deleted = decide_push(
        {"_id": finding["_id"], "_rev": "2-x", "_deleted": True}, finding, ZR01, coordinator
    )
    assert isinstance(deleted, Refusal) and "协调员只能删除安装记录" in deleted.reason_zh
    for kind in (hazard, installation):  # the bare deletion tells neither its author nor its type
        revived = decide_push(kind("coord", doc_id="was-deleted"), None, ZR01, coordinator)
        assert isinstance(revived, Refusal) and revived.rule == "deleted_document"
    own = hazard("coord")
    assert decide_push(dict(own, note="补充"), own, ZR01, coordinator) == Placement(ZR01)
    leader = decide_push(dict(finding, note="网格长改"), finding, ZR01, _ctx(Role.GRID_LEADER, "lead1"))
    assert leader == Placement(ZR01)


def test_point_outside_every_grid_is_kept_in_the_users_grid() -> None:
    doc = hazard("vol1", point=(121.60, 31.10))
    assert decide_push(doc, None, None, _ctx()) == Placement(ZR01)


def test_ambiguous_point_uses_the_hint_when_it_is_a_candidate() -> None:
    ctx = _ctx(sources=(REF, ZR01, ZR02))
    # halfway between the two demo grids' shared edge, with a large accuracy circle
    west, east = INDEX.area("ZR01").geometry, INDEX.area("ZR02").geometry
    edge = west.intersection(east).centroid
    doc = hazard("vol1", point=(edge.x - 0.00005, edge.y), datum="wgs84", accuracy_m=50.0, grid_hint="ZR02")
    assert decide_push(doc, None, None, ctx) == Placement(ZR02)
    doc_without_hint = hazard("vol1", point=(edge.x - 0.00005, edge.y), datum="wgs84", accuracy_m=50.0)
    assert decide_push(doc_without_hint, None, None, ctx) == Placement(ZR01)
    assert ZR01_POINT != ZR02_POINT


def test_scope_maps_micro_grids_to_their_grid_and_admins_see_all() -> None:
    parent_of = {"ZR01-02": "ZR01"}
    volunteer = Principal(1, "v", Role.VOLUNTEER, ("ZR01-02",))
    assert scope_grids(volunteer, ["ZR01", "ZR02"], parent_of) == ["ZR01"]
    admin = Principal(2, "a", Role.ADMIN, ())
    assert scope_grids(admin, ["ZR02", "ZR01"], parent_of) == ["ZR01", "ZR02"]


def test_new_document_types_are_placed_by_their_location() -> None:
    assert decide_push(visit("vol1"), None, None, _ctx()) == Placement(ZR01)
    elsewhere = decide_push(visit("vol1", point=ZR02_POINT), None, None, _ctx())
    assert isinstance(elsewhere, Refusal) and elsewhere.rule == "outside_scope"


def test_document_without_location_goes_to_its_grid_hint_when_in_scope() -> None:
    ctx = _ctx(sources=(REF, ZR01, ZR02))
    assert decide_push(follow_up("vol1", grid_hint="ZR02"), None, None, ctx) == Placement(ZR02)
    assert decide_push(follow_up("vol1", grid_hint="ZR01"), None, None, ctx) == Placement(ZR01)
    by_micro_grid = follow_up("vol1", grid_hint=None, micro_grid_hint="ZR02-03")
    assert decide_push(by_micro_grid, None, None, ctx) == Placement(ZR02)


def test_document_without_location_hinting_another_grid_is_refused() -> None:
    decision = decide_push(follow_up("vol1", grid_hint="ZR02"), None, None, _ctx())
    assert isinstance(decision, Refusal)
    assert (decision.rule, decision.field) == ("outside_scope", "grid_hint")
    assert "清涧网格" in decision.reason_zh and "Qingjian" in decision.reason_en
    # once stored, later revisions stay where the first one went
    stored = follow_up("vol1", grid_hint="ZR01")
    assert decide_push(dict(stored, comment="补充"), stored, ZR01, _ctx()) == Placement(ZR01)


def test_document_without_location_or_hint_is_invalid() -> None:
    decision = decide_push(follow_up("vol1", grid_hint=None), None, None, _ctx())
    assert isinstance(decision, Refusal)
    assert (decision.rule, decision.field) == ("invalid_document", "location")


def test_missing_person_alert_goes_to_the_alerts_of_the_grid_where_it_happened() -> None:
    alert = missing_person("vol1", point=ZR02_POINT)
    assert decide_push(alert, None, None, _ctx()) == Placement(alert_source(COUCH, "ZR02"))
    assert decide_push(dict(alert, grid_hint="ZR01"), None, None, _ctx()) == Placement(
        alert_source(COUCH, "ZR02")
    )
    at_home = missing_person("vol1", point=ZR01_POINT)
    assert decide_push(at_home, None, None, _ctx()) == Placement(alert_source(COUCH, "ZR01"))
    finding_there = decide_push(hazard("vol1", point=ZR02_POINT), None, None, _ctx())
    assert isinstance(finding_there, Refusal)


def test_urgent_findings_take_the_alert_lane_and_stay_there() -> None:
    urgent = hazard("vol1", severity="urgent")
    lane = alert_source(COUCH, "ZR01")
    assert decide_push(urgent, None, None, _ctx()) == Placement(lane)
    missing_on_street = hazard("vol1", concern="04-07")  # the concern's default severity is urgent
    assert decide_push(missing_on_street, None, None, _ctx()) == Placement(lane)
    # a later revision stays in the database the first one went to
    assert decide_push(dict(urgent, note="已处理"), urgent, lane, _ctx()) == Placement(lane)
    routine = hazard("vol1", severity="low", concern="04-07")
    assert decide_push(routine, None, None, _ctx()) == Placement(ZR01)


def _micro_point(code: str) -> tuple[float, float]:
    inner = INDEX.area(code).geometry.representative_point()
    return (inner.x, inner.y)


def _micro_grids() -> tuple[str, str]:
    """ZR01's micro-grid around ZR01_POINT, and another of ZR01."""
    home = INDEX.assign(*ZR01_POINT).micro_grid
    assert home is not None
    other = next(a.code for a in INDEX.by_code.values() if a.parent == "ZR01" and a.code != home)
    return home, other


def _micro_ctx(username: str, role: Role, home: str, **options: Any) -> PushContext:
    """The context of a user whose scope is the micro-grid ``home`` of ZR01."""
    principal = Principal(id=1, username=username, role=role, grids=(home,))
    return PushContext(
        principal,
        [REF, ZR01],
        INDEX,
        load_taxonomy(),
        max_attachment_bytes=8192,
        couch=COUCH,
        micro_limits={"ZR01": frozenset({home})},
        **options,
    )


def test_user_scoped_to_micro_grids_creates_findings_only_there() -> None:
    home, other = _micro_grids()
    ctx = _micro_ctx("vol1", Role.VOLUNTEER, home)
    assert decide_push(hazard("vol1", accuracy_m=1.0), None, None, ctx) == Placement(ZR01)
    refused = decide_push(hazard("vol1", point=_micro_point(other), accuracy_m=1.0), None, None, ctx)
    assert isinstance(refused, Refusal)
    assert (refused.rule, refused.field) == ("outside_scope", "location")
    assert other in refused.reason_zh and home in refused.reason_zh
    by_hint = decide_push(follow_up("vol1", grid_hint=None, micro_grid_hint=other), None, None, ctx)
    assert isinstance(by_hint, Refusal) and by_hint.field == "micro_grid_hint"
    # An alert is filed wherever it happened, micro-grid scope or not.
    alert = missing_person("vol1", point=_micro_point(other))
    assert isinstance(decide_push(alert, None, None, ctx), Placement)


def test_reserved_status_ids_are_refused_to_everyone_but_admins() -> None:
    doc = hazard("vol1", doc_id="status:hazard-123")
    refused = decide_push(doc, None, None, _ctx())
    assert isinstance(refused, Refusal) and (refused.rule, refused.field) == ("reserved_id", "_id")
    leader = decide_push(doc, None, None, _ctx(Role.GRID_LEADER, "lead1"))
    assert isinstance(leader, Refusal) and leader.rule == "reserved_id"
    tombstone = decide_push({"_id": "status:hazard-123", "_deleted": True}, None, None, _ctx())
    assert isinstance(tombstone, Refusal) and tombstone.rule == "reserved_id"


def test_a_volunteer_cannot_write_over_a_deleted_document() -> None:
    # stored None with a home: the winning revision there is a deletion
    revived = decide_push(hazard("vol1b", doc_id="was-deleted"), None, ZR01, _ctx(username="vol1b"))
    assert isinstance(revived, Refusal) and revived.rule == "deleted_document"
    assert "已删除" in revived.reason_zh
    leader = decide_push(hazard("lead1", doc_id="was-deleted"), None, ZR01, _ctx(Role.GRID_LEADER, "lead1"))
    assert leader == Placement(ZR01)
    assert decide_push(hazard("vol1", doc_id="brand-new"), None, None, _ctx()) == Placement(ZR01)


@pytest.mark.parametrize(
    "data",
    [
        "iVBORw0KGgo=AAAA",  # padding in the middle
        "iVBORw0KGgoAAA",  # length not a multiple of 4
        "iVBORw0KGgoAA===",  # three padding characters
        "iVBORw0KGgo AAAA",  # a space
        "iVBORw0KGgo-_AAA",  # URL-safe alphabet
        "iVBORw0KGgoAAAAé",  # not ASCII
    ],
)
def test_attachment_data_that_is_not_strict_base64_is_refused(data: str) -> None:
    doc = hazard("vol1", photo=False)
    doc["_attachments"] = {"p.png": {"content_type": "image/png", "data": data}}
    decision = decide_push(doc, None, None, _ctx())
    assert isinstance(decision, Refusal) and decision.rule == "invalid_attachment"
    assert decision.field == "_attachments.p.png"


@pytest.mark.parametrize("extra", [b"", b"1", b"12"])
def test_padded_base64_photos_are_accepted(extra: bytes) -> None:
    doc = hazard("vol1", photo=False)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100 + extra
    doc["_attachments"] = {"p.png": {"content_type": "image/png", "data": base64.b64encode(png).decode()}}
    assert decide_push(doc, None, None, _ctx()) == Placement(ZR01)


@pytest.mark.parametrize("doc_id", ["_design/evil", "_design%2Fevil", "_users", "_local_but_not/x"])
def test_underscore_ids_are_refused_to_everyone(doc_id: str) -> None:
    # a _design document in a grid database is code CouchDB runs on every later write
    doc = hazard("vol1", doc_id=doc_id, photo=False)
    for ctx in (_ctx(), _ctx(Role.GRID_LEADER, "lead1"), _ctx(Role.ADMIN, "root")):
        refused = decide_push(doc, None, None, ctx)
        assert isinstance(refused, Refusal) and (refused.rule, refused.field) == ("reserved_id", "_id")
        assert "_design/" in refused.reason_zh


@pytest.mark.parametrize("doc_type", [{}, [], 3, None])
def test_a_type_that_is_not_a_string_is_refused_with_the_field_named(doc_type: object) -> None:
    doc = hazard("vol1", photo=False)
    doc["type"] = doc_type
    refused = decide_push(doc, None, None, _ctx())
    assert isinstance(refused, Refusal) and (refused.rule, refused.field) == ("invalid_document", "type")


def test_nobody_but_the_worker_deletes_or_plants_a_case_status() -> None:
    for tombstone in (
        {"_id": "status:hazard-1", "_deleted": True, "type": "case_status", "state": "closed"},
        {"_id": "status:hazard-1", "_deleted": True},
    ):
        for ctx in (_ctx(), _ctx(Role.GRID_LEADER, "lead1")):
            refused = decide_push(tombstone, None, None, ctx)
            assert isinstance(refused, Refusal) and refused.rule in {"server_only_type", "reserved_id"}


def test_a_claimed_accuracy_does_not_stretch_the_scope_beyond_the_tolerance() -> None:
    # ZR02_POINT is well inside ZR02, far more than the tolerance from ZR01
    doc = hazard("vol1", point=ZR02_POINT, accuracy_m=100_000.0)
    assert isinstance(decide_push(doc, None, None, _ctx()), Refusal)
    located = locate_batch([doc], INDEX)
    assert isinstance(decide_push(doc, None, None, _ctx(), located[0]), Refusal)
    # within the tolerance of the boundary, a fix across it is still given the benefit of the doubt
    near = _point_just_across(INDEX.area("ZR01").geometry, INDEX.area("ZR02").geometry)
    doc_near = hazard("vol1", point=near, accuracy_m=60.0, datum="wgs84")
    assert decide_push(doc_near, None, None, _ctx()) == Placement(ZR01)


def _point_just_across(home: BaseGeometry, other: BaseGeometry) -> tuple[float, float]:
    """A WGS-84 point inside ``other``, about 20 m from where it meets ``home``."""
    edge = home.boundary.intersection(other.boundary).representative_point()
    centre = other.representative_point()
    dx, dy = centre.x - edge.x, centre.y - edge.y
    step = 0.0002 / (dx * dx + dy * dy) ** 0.5  # ~20 m in degrees here
    point = (edge.x + dx * step, edge.y + dy * step)
    assert INDEX.assign(*point).grid == "ZR02"
    return point


def test_what_a_micro_grid_user_cannot_see_they_cannot_change() -> None:
    home, other = _micro_grids()
    stored_elsewhere = hazard("vol1", point=_micro_point(other), accuracy_m=1.0, doc_id="theirs")

    def visible(grid: str | None, doc: object) -> bool:
        return doc is not stored_elsewhere

    ctx = _micro_ctx("lead1", Role.GRID_LEADER, home, visible=visible)
    for incoming in (dict(stored_elsewhere, note="改写"), {"_id": "theirs", "_rev": "2-x", "_deleted": True}):
        refused = decide_push(incoming, stored_elsewhere, ZR01, ctx)
        assert isinstance(refused, Refusal) and (refused.rule, refused.field) == ("outside_scope", "_id")


def test_an_alert_filed_in_another_grid_is_changed_there_by_its_author_only() -> None:
    there = alert_source(COUCH, "ZR02")
    alert = missing_person("vol2", point=ZR02_POINT, doc_id="alert-1")
    forged = dict(missing_person("vol1", point=ZR02_POINT, doc_id="alert-1"), status="cancelled")
    refused = decide_foreign(forged, alert, there, _ctx())
    assert isinstance(refused, Refusal) and refused.rule == "outside_scope"
    leader = decide_foreign(dict(alert, status="cancelled"), alert, there, _ctx(Role.GRID_LEADER, "lead1"))
    assert isinstance(leader, Refusal) and leader.rule == "outside_scope"
    deleted = decide_foreign(forged, None, there, _ctx())  # its winning revision is a deletion
    assert isinstance(deleted, Refusal)
    own = missing_person("vol1", point=ZR02_POINT, doc_id="alert-2")
    found = dict(own, status="found", found_at="2026-12-03T10:00:00+08:00")
    assert decide_foreign(found, own, there, _ctx()) == Placement(there)
    assert decide_foreign(
        {"_id": "alert-2", "_rev": "2-x", "_deleted": True}, own, there, _ctx()
    ) == Placement(there)
