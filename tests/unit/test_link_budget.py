import pytest

from sync.link_budget import LinkBudgets, progress_of

pytestmark = pytest.mark.unit


def test_progress_reads_numeric_parts_of_opaque_sequences() -> None:
    assert progress_of({"ref": 38, "ZR01": "120-g1AAAA", "alert:ZR01": "0"}) == 158
    assert progress_of({}) == 0


KB = 1024


def test_budget_grows_as_pages_are_confirmed_and_halves_on_a_retry() -> None:
    budgets = LinkBudgets(256 * KB)
    assert budgets.budget_for("vol1", 0, now=0) == 256 * KB
    # PouchDB asks for pages ahead of what it downloaded: asking alone grows nothing
    assert budgets.budget_for("vol1", 100, now=1) == 256 * KB
    assert budgets.budget_for("vol1", 200, now=2) == 256 * KB
    budgets.delivered("vol1", 100, now=3)  # the pull checkpoint after the first page
    assert budgets.budget_for("vol1", 300, now=3) == 384 * KB
    budgets.delivered("vol1", 200, now=4)
    budgets.delivered("vol1", 200, now=4)  # the same checkpoint again: no growth
    assert budgets.budget_for("vol1", 400, now=5) == 512 * KB
    # the same changes asked for again: the pages after the checkpoint did not make it across
    assert budgets.budget_for("vol1", 200, now=6) == 256 * KB
    assert budgets.budget_for("vol1", 200, now=7) == 256 * KB  # a repeated position: no change
    assert budgets.budget_for("vol2", 0, now=7) == 256 * KB  # per user
    budgets.delivered("vol3", 500, now=7)  # a user who asked for no page has no budget to grow
    assert budgets.budget_for("vol3", 0, now=8) == 256 * KB


def test_a_pull_that_starts_over_grows_again_from_where_it_started() -> None:
    budgets = LinkBudgets(256 * KB)
    budgets.budget_for("vol1", 0, now=0)
    for page in range(1, 5):
        budgets.delivered("vol1", page * 100, now=page)
    assert budgets.budget_for("vol1", 500, now=5) == 768 * KB
    # a new tablet of the same user pulls from the start: halved once, then its checkpoints count
    assert budgets.budget_for("vol1", 0, now=6) == 384 * KB
    budgets.delivered("vol1", 100, now=7)
    assert budgets.budget_for("vol1", 200, now=8) == 512 * KB


def test_budget_stays_within_bounds_and_forgets_idle_users() -> None:
    budgets = LinkBudgets(256 * KB, minimum=64 * KB, maximum=1024 * KB, trust_after=100)
    budgets.budget_for("vol1", 0, now=0)
    for step in range(1, 20):
        budgets.delivered("vol1", step, now=step)
    assert budgets.budget_for("vol1", 50, now=30) == 1024 * KB
    for step in range(10):
        budgets.budget_for("vol1", 40 - step, now=31 + step)
    assert budgets.budget_for("vol1", 0, now=50) == 64 * KB
    assert budgets.budget_for("vol1", 0, now=50 + 31 * 60) == 256 * KB


def test_zero_turns_budgets_off() -> None:
    assert LinkBudgets(0).budget_for("vol1", 10) == 0


def test_a_link_that_delivers_maximum_pages_without_retries_is_trusted_until_a_retry() -> None:
    budgets = LinkBudgets(256 * KB, maximum=512 * KB, trust_after=3)
    answers = [budgets.budget_for("vol1", 0, now=0)]
    for step in range(1, 7):
        budgets.delivered("vol1", step, now=step)
        answers.append(budgets.budget_for("vol1", step, now=step))
    # grows to the maximum; after three pages delivered at the maximum, pages are unbounded
    assert answers == [256 * KB, 384 * KB, 512 * KB, 512 * KB, 0, 0, 0]
    assert budgets.budget_for("vol1", 3, now=8) == 256 * KB  # a retry: bounded again, halved
    budgets.delivered("vol1", 4, now=9)
    assert budgets.budget_for("vol1", 5, now=9) == 384 * KB
