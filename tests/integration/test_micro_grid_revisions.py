"""A user scoped to one micro-grid asks for revisions by name: an older revision, a deleted
document's last body, its photo, or whether a document they cannot see exists. What they may not
see answers exactly as what does not exist; tombstones still reach them."""

from typing import Any

import pytest

from server.db.models import Role
from tests.support.docs import hazard
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

DB = "/sync/field"
_NEVER = "1-" + "0" * 32


async def _micro_user(stack: Stack) -> tuple[float, float]:
    """Make ``micro1``, a volunteer of ZR01's micro-grid around ZR01_POINT; return a point of
    another micro-grid of ZR01."""
    home, _, elsewhere = stack.micro_grids_of_zr01()
    await stack.add_user("micro1", Role.VOLUNTEER, [home])
    return elsewhere


def _not_found(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 404, answer.text
    body: dict[str, Any] = answer.json()
    assert body["error"] == "not_found"
    return body


async def test_a_deleted_documents_old_body_and_photo_stay_hidden(stack: Stack) -> None:
    elsewhere = await _micro_user(stack)
    async with stack.http("vol1") as vol1:
        doc = hazard("vol1", doc_id="gone", point=elsewhere, accuracy_m=1.0, note="门牌 12 号")
        first = (await vol1.put(f"{DB}/gone", json=doc)).json()["rev"]
        tomb = (await vol1.delete(f"{DB}/gone", params={"rev": first})).json()["rev"]
        # who sees the whole grid still reads every revision
        assert (await vol1.get(f"{DB}/gone", params={"rev": first})).json()["note"] == "门牌 12 号"
        assert (await vol1.get(f"{DB}/gone/photo-1.png", params={"rev": first})).status_code == 200

    async with stack.http("micro1") as micro:
        # the deletion reaches them, with its history of revision ids
        leaves = (await micro.get(f"{DB}/gone", params={"open_revs": "all", "revs": "true"})).json()
        assert [leaf["ok"]["_rev"] for leaf in leaves] == [tomb]
        assert leaves[0]["ok"]["_deleted"] is True
        assert (await micro.get(f"{DB}/gone", params={"rev": tomb})).json()["_deleted"] is True
        # the body before it does not, and looks like a revision that never was
        never = _not_found(await micro.get(f"{DB}/gone", params={"rev": _NEVER}))
        assert _not_found(await micro.get(f"{DB}/gone", params={"rev": first})) == never
        for options in (
            {"revs": "true"},
            {"revs_info": "true"},
            {"conflicts": "true"},
            {"attachments": "true"},
        ):
            hidden = await micro.get(f"{DB}/gone", params={"rev": first, **options})
            assert _not_found(hidden) == never, options
        named = await micro.get(f"{DB}/gone", params={"open_revs": f'["{first}", "{tomb}", "{_NEVER}"]'})
        assert [next(iter(entry)) for entry in named.json()] == ["missing", "ok", "missing"]
        assert named.json()[0] == {"missing": first}
        photo = await micro.get(f"{DB}/gone/photo-1.png", params={"rev": first})
        assert _not_found(photo) == _not_found(
            await micro.get(f"{DB}/gone/photo-1.png", params={"rev": _NEVER})
        )
        # what _bulk_get already answered
        bulk = (await micro.post(f"{DB}/_bulk_get", json={"docs": [{"id": "gone", "rev": first}]})).json()
        assert "error" in bulk["results"][0]["docs"][0]


async def test_a_visible_documents_earlier_body_from_elsewhere_stays_hidden(stack: Stack) -> None:
    elsewhere = await _micro_user(stack)
    async with stack.http("vol1") as vol1:
        doc = hazard("vol1", doc_id="moved", point=elsewhere, accuracy_m=1.0, note="原来的位置")
        first = (await vol1.put(f"{DB}/moved", json=doc)).json()["rev"]
        here = hazard("vol1", doc_id="moved", accuracy_m=1.0, note="搬到这里", _rev=first)
        second = (await vol1.put(f"{DB}/moved", json=here)).json()["rev"]

    async with stack.http("micro1") as micro:
        current = await micro.get(f"{DB}/moved", params={"revs": "true", "attachments": "true"})
        assert current.json()["_rev"] == second and current.json()["note"] == "搬到这里"
        assert (await micro.get(f"{DB}/moved", params={"rev": second})).status_code == 200
        never = _not_found(await micro.get(f"{DB}/moved", params={"rev": _NEVER}))
        assert _not_found(await micro.get(f"{DB}/moved", params={"rev": first})) == never
        both = (await micro.get(f"{DB}/moved", params={"open_revs": f'["{first}", "{second}"]'})).json()
        assert both[0] == {"missing": first}
        assert both[1]["ok"]["_rev"] == second
        assert [
            leaf["ok"]["_rev"]
            for leaf in (await micro.get(f"{DB}/moved", params={"open_revs": "all"})).json()
        ] == [second]
        assert (await micro.get(f"{DB}/moved/photo-1.png", params={"rev": second})).status_code == 200
        assert (await micro.get(f"{DB}/moved/photo-1.png")).status_code == 200
        _not_found(await micro.get(f"{DB}/moved/photo-1.png", params={"rev": first}))
        # an option pouchdb-server would follow to another revision is not passed on
        latest = await micro.get(f"{DB}/moved/photo-1.png", params={"rev": first, "latest": "true"})
        _not_found(latest)


async def test_revs_diff_does_not_tell_a_hidden_document_exists(stack: Stack) -> None:
    elsewhere = await _micro_user(stack)
    async with stack.http("vol1") as vol1:
        hidden = hazard("vol1", doc_id="hidden", point=elsewhere, accuracy_m=1.0, photo=False)
        hidden_rev = (await vol1.put(f"{DB}/hidden", json=hidden)).json()["rev"]
        shown = hazard("vol1", doc_id="shown", accuracy_m=1.0, photo=False)
        shown_rev = (await vol1.put(f"{DB}/shown", json=shown)).json()["rev"]
    asked = {
        "hidden": [hidden_rev, "2-abc"],
        "shown": [shown_rev, "2-abc"],
        "never-was": [hidden_rev, "2-abc"],
    }
    async with stack.http("micro1") as micro:
        diff = (await micro.post(f"{DB}/_revs_diff", json=asked)).json()
    assert diff["hidden"] == diff["never-was"] == {"missing": [hidden_rev, "2-abc"]}
    assert diff["shown"]["missing"] == ["2-abc"]
    async with stack.http("vol1") as vol1:
        whole_grid = (await vol1.post(f"{DB}/_revs_diff", json=asked)).json()
    assert whole_grid["hidden"]["missing"] == ["2-abc"]
