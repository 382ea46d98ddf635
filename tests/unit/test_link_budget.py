import pytest

from sync.link_budget import LinkBudgets, progress_of

pytestmark = pytest.mark.unit


def test_progress_reads_numeric_parts_of_opaque_sequences() -> None:
    assert progress_of({"ref": 38, "ZR01": "120-g1AAAA", "alert:ZR01": "0"}) == 158
    assert progress_of({}) == 0


def test_budget_grows_while_pulls_move_on_and_halves_on_a_retry() -> None:
    budgets = LinkBudgets(256 * 1024)
    assert budgets.budget_for("vol1", 0, now=0) == 256 * 1024
    assert budgets.budget_for("vol1", 100, now=1) == 384 * 1024
    assert budgets.budget_for("vol1", 200, now=2) == 512 * 1024
    # the same changes asked for again: the last page did not make it across
    assert budgets.budget_for("vol1", 100, now=3) == 256 * 1024
    assert budgets.budget_for("vol1", 100, now=4) == 256 * 1024  # a repeated position: no change
    assert budgets.budget_for("vol2", 0, now=4) == 256 * 1024  # per user


def test_budget_stays_within_bounds_and_forgets_idle_users() -> None:
    budgets = LinkBudgets(256 * 1024, minimum=64 * 1024, maximum=1024 * 1024, trust_after=100)
    for step in range(1, 20):
        budgets.budget_for("vol1", step, now=step)
    assert budgets.budget_for("vol1", 50, now=30) == 1024 * 1024
    for step in range(10):
        budgets.budget_for("vol1", 40 - step, now=31 + step)
    assert budgets.budget_for("vol1", 0, now=50) == 64 * 1024
    assert budgets.budget_for("vol1", 0, now=50 + 31 * 60) == 256 * 1024


def test_zero_turns_budgets_off() -> None:
    assert LinkBudgets(0).budget_for("vol1", 10) == 0


def test_a_link_that_carries_maximum_pages_without_retries_is_trusted_until_a_retry() -> None:
    budgets = LinkBudgets(256 * 1024, maximum=512 * 1024, trust_after=3)
    answers = [budgets.budget_for("vol1", step, now=step) for step in range(7)]
    # grows to the maximum; after three pages that moved on at the maximum, pages are unbounded
    assert answers == [256 * 1024, 384 * 1024, 512 * 1024, 512 * 1024, 0, 0, 0]
    assert budgets.budget_for("vol1", 3, now=8) == 256 * 1024  # a retry: bounded again, halved
    assert budgets.budget_for("vol1", 4, now=9) == 384 * 1024
