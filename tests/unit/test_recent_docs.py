"""The gateway's moment-long memory of stored revisions (``_revs_diff`` → ``_bulk_docs``)."""

import time

import pytest

from sync.recent_docs import RecentDocs, StoredDoc

pytestmark = pytest.mark.unit

ASKED = ["gp_alert_zr01", "gp_reference", "gp_grid_zr01"]


def test_recall_returns_what_the_same_lookup_found() -> None:
    recent = RecentDocs()
    found = {"a": StoredDoc("gp_grid_zr01", {"author": "vol1"}), "b": StoredDoc(None, None)}
    recent.remember(ASKED, found)
    assert recent.recall(ASKED, ["b", "a"]) == {"b": found["b"], "a": found["a"]}


def test_any_unknown_id_or_other_databases_means_ask_again() -> None:
    recent = RecentDocs()
    recent.remember(ASKED, {"a": StoredDoc(None, None)})
    assert recent.recall(ASKED, ["a", "never-looked-up"]) is None
    assert recent.recall(["gp_grid_zr02"], ["a"]) is None  # another user's sources


def test_entries_expire_and_writes_forget_them() -> None:
    recent = RecentDocs(ttl_s=0.05)
    recent.remember(ASKED, {"a": StoredDoc(None, None), "b": StoredDoc(None, None)})
    recent.forget(["a"])
    assert recent.recall(ASKED, ["a"]) is None
    assert recent.recall(ASKED, ["b"]) is not None
    time.sleep(0.06)
    assert recent.recall(ASKED, ["b"]) is None


def test_capacity_drops_the_oldest() -> None:
    recent = RecentDocs(capacity=2)
    for doc_id in ("a", "b", "c"):
        recent.remember(ASKED, {doc_id: StoredDoc(None, None)})
    assert recent.recall(ASKED, ["a"]) is None
    assert recent.recall(ASKED, ["b", "c"]) is not None


def test_expired_bodies_are_dropped_when_new_ones_arrive() -> None:
    recent = RecentDocs(ttl_s=0.05)
    recent.remember(ASKED, {"old": StoredDoc("gp_grid_zr01", {"note": "x" * 1000})})
    time.sleep(0.06)
    recent.remember(ASKED, {"new": StoredDoc(None, None)})
    assert len(recent) == 1
