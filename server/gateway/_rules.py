"""Push rules: may this user write this document, is it valid, and which grid database gets it.

Every refusal names the rule and, where there is one, the field, in Chinese and English, because
PouchDB shows the reason to the person and never sends the document again.
"""

import binascii
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from field_schema import (
    EMERGENCY_TYPES,
    SERVER_ONLY_TYPES,
    DocumentInvalid,
    Taxonomy,
    is_urgent,
    sniff_image_type,
    upgrade,
    validate_document,
)
from geo import Assignment, AssignmentStatus, Datum, GridIndex, to_wgs84, to_wgs84_many
from server.auth import Principal
from server.db.models import Role
from server.gateway._scope import Lane, Source, alert_source
from server.settings import CouchSettings
from sync.writeback import STATUS_PREFIX

__all__ = [
    "SCOPE_TOLERANCE_M",
    "Placement",
    "PushContext",
    "Refusal",
    "decide_foreign",
    "decide_push",
    "locate_batch",
]

_BASE64_ALPHABET = (string.ascii_letters + string.digits + "+/").encode()
_HEAD_CHARS = 64
"""Base64 characters decoded to sniff a photo's type: 48 bytes, more than any magic number needs."""
SCOPE_TOLERANCE_M = 100.0
"""The most of a document's claimed GNSS accuracy that counts when its point is checked against the
user's grids: a fix just across a boundary is given the benefit of the doubt, a claimed accuracy
of 100 km does not make every grid the user's (the worker still sees the accuracy as given)."""


def _always_visible(grid: str | None, doc: Mapping[str, Any] | None) -> bool:
    return True


@dataclass(frozen=True)
class Refusal:
    rule: str
    reason_zh: str
    reason_en: str
    field: str | None = None

    @property
    def reason(self) -> str:
        return f"{self.reason_zh} / {self.reason_en}"


@dataclass(frozen=True)
class Placement:
    source: Source


COORDINATED_TYPES = frozenset({"installation"})
"""What campaign coordinators keep up: they change the installation records of their grids, whoever
filed them. Any other document (a finding is a volunteer's evidence) only when it is their own."""


def _changes_others(principal: Principal, *doc_types: object) -> bool:
    """Whether this user may change or delete a document someone else wrote, of these types."""
    if principal.is_admin or principal.role is Role.GRID_LEADER:
        return True
    return principal.role is Role.COORDINATOR and all(t in COORDINATED_TYPES for t in doc_types)


def _not_own(principal: Principal, action_zh: str, action_en: str, author: object) -> Refusal:
    if principal.role is Role.COORDINATOR:
        return Refusal(
            "not_own_document",
            f"协调员只能{action_zh}安装记录或自己记录的文档（作者：{author}）",
            f"coordinators may {action_en} installation records and their own documents only"
            f" (author: {author})",
            "author",
        )
    return Refusal(
        "not_own_document",
        f"只能{action_zh}自己记录的文档（作者：{author}）",
        f"volunteers may {action_en} only their own documents (author: {author})",
        "author",
    )


_SERVER_ONLY = Refusal(
    "server_only_type",
    "案件状态只能由系统写入",
    "case status documents are written by the server only",
    "type",
)
_OUTSIDE_MICRO_GRIDS = Refusal(
    "outside_scope",
    "该文档位于您负责的微网格以外，不能修改",
    "this document lies outside your micro-grids and cannot be changed",
    "_id",
)


@dataclass(frozen=True)
class PushContext:
    principal: Principal
    sources: Sequence[Source]
    grid_index: GridIndex | None
    taxonomy: Taxonomy
    max_attachment_bytes: int
    couch: CouchSettings
    micro_limits: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Grid → the only micro-grids the user works in there (grids they hold whole are absent)."""
    visible: Callable[[str | None, Mapping[str, Any] | None], bool] = _always_visible
    """Whether the user may see a stored document of a grid (``Visibility.visible``): what they
    cannot see, they cannot change either."""

    @cached_property
    def grid_sources(self) -> list[Source]:
        return [s for s in self.sources if s.lane is Lane.GRID]

    @cached_property
    def _grid_source_by_code(self) -> dict[str, Source]:
        # several placements ask per document of a batch: a coordinator's view has dozens of grids
        return {s.grid: s for s in reversed(self.grid_sources) if s.grid is not None}

    def grid_source(self, grid: str) -> Source | None:
        return self._grid_source_by_code.get(grid)

    def grid_label(self, code: str) -> tuple[str, str]:
        if self.grid_index is not None and code in self.grid_index.by_code:
            area = self.grid_index.area(code)
            return f"{area.name_zh}（{code}）", f"{area.name_en} ({code})"
        return code, code


def decide_push(
    doc: Mapping[str, Any],
    stored: Mapping[str, Any] | None,
    home: Source | None,
    ctx: PushContext,
    assignment: Assignment | None = None,
) -> Placement | Refusal:
    """Decide one incoming document. ``stored`` is the current winning revision, ``home`` its database."""
    doc_id = str(doc.get("_id", ""))
    if doc_id.startswith("_"):
        # _design documents carry code CouchDB runs (validate_doc_update can block every write to a
        # grid); other underscore ids are CouchDB's own. Admins write them to a database directly.
        return Refusal(
            "reserved_id",
            "以下划线开头的文档编号（如 _design/）不能通过巡查数据库写入",
            "document ids starting with '_' (such as _design/) cannot be written to the field database",
            "_id",
        )
    if "type" in doc and not isinstance(doc["type"], str):
        return Refusal(
            "invalid_document",
            "文档不合格：type：必须是字符串",
            "invalid document: type: must be a string",
            "type",
        )
    if home is not None and home.is_reference:
        if ctx.principal.is_admin:
            return Placement(home)
        return Refusal("reference_read_only", "参考数据（网格边界、分类）只读", "reference data is read-only")
    if doc_id.startswith(STATUS_PREFIX) and not ctx.principal.is_admin:
        # The worker writes each finding's case status under this id: nobody may take it first,
        # nor delete it, nor plant a deletion there before the worker writes it.
        if doc.get("type") in SERVER_ONLY_TYPES:
            return _SERVER_ONLY
        return Refusal(
            "reserved_id",
            f"文档编号前缀 {STATUS_PREFIX} 保留给系统",
            f"document ids starting with {STATUS_PREFIX!r} are reserved for the server",
            "_id",
        )
    if home is not None and stored is not None and not ctx.visible(home.grid, stored):
        return _OUTSIDE_MICRO_GRIDS
    if doc.get("_deleted"):
        return _decide_delete(stored, home, ctx)
    if home is not None and stored is None and not _changes_others(ctx.principal, None):
        # Its winning revision is a deletion, whose bare body names no author and no type: a
        # volunteer or coordinator writing over it could take a colleague's withdrawn document
        # (of any type) as their own.
        return Refusal(
            "deleted_document",
            "该文档已删除，不能再修改；请新建一条记录",
            "this document was deleted and cannot be changed; record a new one",
            "_id",
        )
    if doc.get("type") in SERVER_ONLY_TYPES:
        return _SERVER_ONLY
    try:
        validate_document(doc, ctx.taxonomy)
    except DocumentInvalid as exc:
        first = exc.errors[0]
        details_zh = "；".join(f"{e.path}：{e.message_zh}" for e in exc.errors)
        details_en = "; ".join(f"{e.path}: {e.message_en}" for e in exc.errors)
        return Refusal(
            "invalid_document", f"文档不合格：{details_zh}", f"invalid document: {details_en}", first.path
        )
    refusal = _check_author(doc, stored, ctx.principal)
    if refusal is None:
        refusal = _check_attachments(doc, ctx.max_attachment_bytes)
    if refusal is not None:
        return refusal
    return _place(upgrade(doc), home, ctx, assignment)


def decide_foreign(
    doc: Mapping[str, Any],
    stored: Mapping[str, Any] | None,
    home: Source,
    ctx: PushContext,
    assignment: Assignment | None = None,
) -> Placement | Refusal:
    """Decide a document whose id a database outside the user's scope holds: an alert they filed in
    another grid. Only its author changes it there; to anyone else it is another grid's document."""
    author = stored.get("author") if stored is not None else None
    if not ctx.principal.is_admin and author != ctx.principal.username:
        return Refusal(
            "outside_scope",
            "该编号的文档属于您负责范围以外的网格，只有其作者可以修改",
            "a document with this id belongs to a grid outside your scope; only its author may change it",
            "_id",
        )
    return decide_push(doc, stored, home, ctx, assignment)


def locate_batch(docs: Sequence[Mapping[str, Any]], grid_index: GridIndex | None) -> dict[int, Assignment]:
    """Where each located document of a batch lies, in one vectorised pass (by position)."""
    positions: list[int] = []
    lons: list[float] = []
    lats: list[float] = []
    datums: list[Datum] = []
    accuracies: list[float] = []
    if grid_index is None:
        return {}
    for position, doc in enumerate(docs):
        if doc.get("_deleted"):
            continue
        try:
            location = upgrade(doc).get("location")
            if not isinstance(location, Mapping):
                continue
            lon, lat = float(location["lon"]), float(location["lat"])
            datum = Datum(str(location["datum"]))
            accuracy = min(float(location.get("accuracy_m") or 0.0), SCOPE_TOLERANCE_M)
        except (DocumentInvalid, KeyError, TypeError, ValueError):
            continue  # validation refuses it with the field named
        if not (-180 <= lon <= 180 and -90 <= lat <= 90 and 0 <= accuracy < float("inf")):
            continue
        positions.append(position)
        lons.append(lon)
        lats.append(lat)
        datums.append(datum)
        accuracies.append(accuracy)
    if not positions:
        return {}
    batch = grid_index.assign_batch(*to_wgs84_many(lons, lats, datums), accuracies)
    return {position: batch[k] for k, position in enumerate(positions)}


def _decide_delete(
    stored: Mapping[str, Any] | None, home: Source | None, ctx: PushContext
) -> Placement | Refusal:
    principal = ctx.principal
    if (
        stored is not None
        and stored.get("author") != principal.username
        and not _changes_others(principal, stored.get("type"))
    ):
        return _not_own(principal, "删除", "delete", stored.get("author"))
    if stored is not None and stored.get("type") in SERVER_ONLY_TYPES:
        return _SERVER_ONLY
    target = home or (ctx.grid_sources[0] if ctx.grid_sources else None)
    if target is None:
        return Refusal("outside_scope", "您没有负责的网格", "you have no grid in your scope")
    return Placement(target)


def _check_author(
    doc: Mapping[str, Any], stored: Mapping[str, Any] | None, principal: Principal
) -> Refusal | None:
    author = doc.get("author")
    if stored is None:
        if author != principal.username and not principal.is_admin:
            return Refusal(
                "author_mismatch",
                f"作者字段应为当前用户 {principal.username}，而不是 {author!r}",
                f"author must be the signed-in user {principal.username!r}, not {author!r}",
                "author",
            )
        return None
    stored_author = stored.get("author")
    if stored_author is not None and author != stored_author:
        return Refusal(
            "author_immutable", "作者字段不可修改", f"author cannot change (was {stored_author!r})", "author"
        )
    if stored_author != principal.username and not _changes_others(
        principal, stored.get("type"), doc.get("type")
    ):
        return _not_own(principal, "修改", "edit", stored_author)
    return None


def _check_attachments(doc: Mapping[str, Any], max_bytes: int) -> Refusal | None:
    attachments = doc.get("_attachments") or {}
    if not isinstance(attachments, Mapping):
        return Refusal("invalid_attachment", "附件格式错误", "_attachments must be an object", "_attachments")
    for name, att in attachments.items():
        field = f"_attachments.{name}"
        if not isinstance(att, Mapping):
            return Refusal("invalid_attachment", "附件格式错误", "attachment must be an object", field)
        if att.get("stub"):
            continue
        data = att.get("data")
        if not isinstance(data, str):
            return Refusal(
                "invalid_attachment", "附件缺少数据", "attachment has neither data nor stub", field
            )
        if len(data) * 3 // 4 > max_bytes + 3:
            return _too_large(field, max_bytes)
        payload = _base64_payload(data)
        if payload is None:
            return Refusal(
                "invalid_attachment",
                "附件不是有效的 base64 数据",
                "attachment data is not valid base64",
                field,
            )
        size, head = payload
        if size > max_bytes:
            return _too_large(field, max_bytes)
        if sniff_image_type(head) is None:
            return Refusal(
                "attachment_type",
                "附件必须是 JPEG、PNG 或 WebP 照片（按内容检查）",
                "attachments must be JPEG, PNG or WebP photos (checked by content)",
                field,
            )
    return None


def _base64_payload(data: str) -> tuple[int, bytes] | None:
    """Decoded size and first bytes of strict, padded base64 (what CouchDB will decode), or None.

    The alphabet is checked by ``bytes.translate`` rather than by decoding the whole photo: six
    times faster, and a push of 200 photos spent 0.3 s decoding them only to read their magic bytes.
    """
    if len(data) % 4 or not data.isascii():
        return None
    encoded = data.encode("ascii")
    padding = len(encoded) - len(encoded.rstrip(b"="))
    # what is left once the alphabet is removed must be the trailing padding, and nothing else
    if padding > 2 or encoded.translate(None, _BASE64_ALPHABET) != b"=" * padding:
        return None
    try:
        head = binascii.a2b_base64(encoded[:_HEAD_CHARS], strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return len(encoded) * 3 // 4 - padding, head


def _too_large(field: str, max_bytes: int) -> Refusal:
    mb = max_bytes / (1024 * 1024)
    return Refusal(
        "attachment_too_large", f"照片超过 {mb:g} MB 上限", f"photo exceeds the {mb:g} MB limit", field
    )


def _place(
    doc: Mapping[str, Any], home: Source | None, ctx: PushContext, assignment: Assignment | None
) -> Placement | Refusal:
    if assignment is None:
        assignment = _locate(doc, ctx.grid_index)
    placed = _place_in_grid(doc, home, ctx, assignment)
    if home is None and isinstance(placed, Placement) and doc.get("type") not in EMERGENCY_TYPES:
        refused = _outside_micro_grids(doc, placed.source, ctx, assignment)
        if refused is not None:
            return refused
    if home is not None or isinstance(placed, Refusal) or not is_urgent(doc, ctx.taxonomy):
        return placed
    # A new urgent finding or alert goes to the alerts database of the grid where it happened, which
    # every pull of that grid's volunteers and leader reads before anything else.
    grid = placed.source.grid
    assert grid is not None  # placements are always in a grid lane
    return Placement(alert_source(ctx.couch, grid))


def _place_in_grid(
    doc: Mapping[str, Any], home: Source | None, ctx: PushContext, assignment: Assignment | None
) -> Placement | Refusal:
    location = doc.get("location")
    candidates: list[str] = []
    if assignment is not None:
        if assignment.status is AssignmentStatus.AMBIGUOUS:
            candidates = list(assignment.candidates)
        elif assignment.grid is not None:
            candidates = [assignment.grid]
    in_scope = [g for g in candidates if ctx.grid_source(g) is not None]
    hint = _grid_hint(doc, ctx)
    if candidates and not in_scope:
        if doc.get("type") in EMERGENCY_TYPES and home is None:
            # An alert (e.g. a missing elder) is never refused for where it happened: it goes to the
            # alerts of the grid where the person was last seen, even outside the author's grids.
            return Placement(Source(candidates[0], ctx.couch.grid_db(candidates[0]), candidates[0]))
        if doc.get("type") in EMERGENCY_TYPES and home is not None and home not in ctx.sources:
            return Placement(home)  # its author changes it where it was filed (see decide_foreign)
        zh, en = ctx.grid_label(candidates[0])
        return Refusal(
            "outside_scope",
            f"位置 location 位于{zh}，不在您负责的网格内",
            f"location lies in grid {en}, outside your grids",
            "location",
        )
    if home is not None:
        return Placement(home)
    if hint is not None and hint in in_scope:
        return Placement(_required(ctx.grid_source(hint)))
    if in_scope:
        return Placement(_required(ctx.grid_source(in_scope[0])))
    if not isinstance(location, Mapping) and hint is not None and ctx.grid_source(hint) is None:
        # Without a location the hint is the only placement (e.g. a follow-up by phone): a grid
        # outside the user's scope is refused, as a point there would be.
        zh, en = ctx.grid_label(hint)
        return Refusal(
            "outside_scope",
            f"所在网格 grid_hint 为{zh}，不在您负责的网格内",
            f"grid_hint names grid {en}, outside your grids",
            "grid_hint",
        )
    # Outside every grid: keep it in the user's hinted (or first) grid; the worker queues it as unassigned.
    return _fallback(home, hint, ctx)


def _outside_micro_grids(
    doc: Mapping[str, Any], target: Source, ctx: PushContext, assignment: Assignment | None
) -> Refusal | None:
    """A user scoped to some micro-grids of a grid creates documents there only. A point whose
    accuracy circle reaches their grid from the next one is given the benefit of the doubt, as for
    grids; boundaries between micro-grids get none (their accuracy is not computed)."""
    allowed = ctx.micro_limits.get(target.grid or "")
    if not allowed or ctx.grid_index is None:
        return None
    if assignment is not None:
        if assignment.micro_grid is None or assignment.grid != target.grid:
            return None  # outside the micro-grids, or across a grid boundary within the tolerance
        micro, field_name = assignment.micro_grid, "location"
    else:
        hint = doc.get("micro_grid_hint")
        if not isinstance(hint, str) or not hint:
            return None
        micro, field_name = hint, "micro_grid_hint"
    if micro in allowed:
        return None
    zh, en = ctx.grid_label(micro)
    yours = "、".join(sorted(allowed))
    return Refusal(
        "outside_scope",
        f"{field_name} 位于微网格{zh}，您只负责微网格 {yours}",
        f"{field_name} lies in micro-grid {en}; you work only in micro-grids {', '.join(sorted(allowed))}",
        field_name,
    )


def _locate(doc: Mapping[str, Any], grid_index: GridIndex | None) -> Assignment | None:
    """Where a (validated) document's location lies; None without a location or grids."""
    location = doc.get("location")
    if not isinstance(location, Mapping) or grid_index is None:
        return None
    lon, lat = to_wgs84(float(location["lon"]), float(location["lat"]), str(location["datum"]))
    return grid_index.assign(lon, lat, min(float(location.get("accuracy_m") or 0.0), SCOPE_TOLERANCE_M))


def _grid_hint(doc: Mapping[str, Any], ctx: PushContext) -> str | None:
    """The grid the tablet named: ``grid_hint``, else the parent grid of ``micro_grid_hint``."""
    hint = doc.get("grid_hint")
    if isinstance(hint, str) and hint:
        return hint
    micro = doc.get("micro_grid_hint")
    if isinstance(micro, str) and ctx.grid_index is not None and micro in ctx.grid_index.by_code:
        return ctx.grid_index.area(micro).parent
    return None


def _fallback(home: Source | None, hint: str | None, ctx: PushContext) -> Placement | Refusal:
    if home is not None:
        return Placement(home)
    if hint is not None and ctx.grid_source(hint) is not None:
        return Placement(_required(ctx.grid_source(hint)))
    if ctx.grid_sources:
        return Placement(ctx.grid_sources[0])
    return Refusal("outside_scope", "您没有负责的网格", "you have no grid in your scope")


def _required(source: Source | None) -> Source:
    assert source is not None
    return source
