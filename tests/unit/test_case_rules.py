"""The five-step loop's transition table and the working-day calendar (pure, no I/O)."""

from datetime import UTC, date, datetime

import pytest

from server.cases._calendar import DEFAULT_CALENDAR_FILE, CalendarError, WorkCalendar, load_calendar
from server.cases._query import BBox, decode_cursor, encode_cursor
from server.cases._transitions import (
    TRANSITIONS,
    TransitionFacts,
    TransitionRefused,
    allowed_targets,
    check_transition,
)
from server.db.models import Case, CaseState, Role
from server.errors import ApiError

pytestmark = pytest.mark.unit

S = CaseState
LEADER = TransitionFacts(Role.GRID_LEADER, in_scope=True)


def _refused(current: CaseState, target: CaseState, facts: TransitionFacts) -> TransitionRefused:
    with pytest.raises(TransitionRefused) as info:
        check_transition(current, target, facts)
    return info.value


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.VISIT_SURVEY, S.PROBLEM_FOUND),
        (S.PROBLEM_FOUND, S.COORDINATING),
        (S.COORDINATING, S.RESOLVING),
        (S.RESOLVING, S.FOLLOW_UP),
        (S.CLOSED, S.REOPENED),
        (S.REOPENED, S.COORDINATING),
        (S.COORDINATING, S.PARKED),
        (S.PARKED, S.RESOLVING),
    ],
)
def test_leaders_walk_the_loop(current: CaseState, target: CaseState) -> None:
    check_transition(current, target, LEADER)
    check_transition(current, target, TransitionFacts(Role.ADMIN, in_scope=True))


def test_the_loop_reaches_closed_only_through_follow_up() -> None:
    into_closed = {src for (src, dst) in TRANSITIONS if dst is S.CLOSED}
    assert into_closed == {S.FOLLOW_UP}
    out_of_closed = {dst for (src, dst) in TRANSITIONS if src is S.CLOSED}
    assert out_of_closed == {S.REOPENED}
    assert S.PARKED not in {dst for (src, dst) in TRANSITIONS if src is S.PARKED}


def test_skipping_a_step_names_the_rule_and_the_allowed_steps() -> None:
    refusal = _refused(S.PROBLEM_FOUND, S.CLOSED, LEADER)
    assert refusal.status == 409
    assert refusal.rule == "transition_not_in_loop"
    assert "发现问题" in refusal.reason_zh and "已办结" in refusal.reason_zh
    assert "coordinating" in refusal.reason_en  # lists what is allowed instead


def test_closing_needs_a_follow_up_record() -> None:
    refusal = _refused(S.FOLLOW_UP, S.CLOSED, LEADER)
    assert (refusal.status, refusal.rule) == (409, "follow_up_required")
    assert "回访" in refusal.reason_zh
    check_transition(S.FOLLOW_UP, S.CLOSED, TransitionFacts(Role.GRID_LEADER, True, has_follow_up=True))


@pytest.mark.parametrize("role", [Role.VOLUNTEER, Role.COORDINATOR, Role.DEPARTMENT])
def test_other_roles_take_no_step(role: Role) -> None:
    refusal = _refused(S.PROBLEM_FOUND, S.COORDINATING, TransitionFacts(role, in_scope=True))
    assert (refusal.status, refusal.rule) == (403, "role_cannot_transition")
    assert allowed_targets(S.PROBLEM_FOUND, role) == []


def test_foreign_grid_is_refused_before_the_table() -> None:
    refusal = _refused(S.PROBLEM_FOUND, S.COORDINATING, TransitionFacts(Role.GRID_LEADER, in_scope=False))
    assert (refusal.status, refusal.rule) == (403, "outside_scope")


def test_same_state_is_a_conflict() -> None:
    assert _refused(S.RESOLVING, S.RESOLVING, LEADER).rule == "same_state"


def test_allowed_targets_follow_the_table() -> None:
    assert allowed_targets(S.RESOLVING, Role.GRID_LEADER) == [S.COORDINATING, S.FOLLOW_UP, S.PARKED]


# --- working days -------------------------------------------------------------------------------

CAL = load_calendar(DEFAULT_CALENDAR_FILE)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 1, 1), False),  # 元旦, a Thursday
        (date(2026, 1, 4), True),  # Sunday worked (调休)
        (date(2026, 2, 14), True),  # Saturday worked before 春节
        (date(2026, 2, 16), False),  # 春节, a Monday
        (date(2026, 2, 24), True),  # first working day after 春节
        (date(2026, 2, 28), True),  # Saturday worked after 春节
        (date(2026, 3, 7), False),  # an ordinary Saturday
        (date(2026, 5, 9), True),  # Saturday worked after 劳动节
        (date(2026, 9, 20), True),  # Sunday worked before 国庆
        (date(2026, 10, 8), True),  # Thursday after 国庆
        (date(2026, 10, 10), True),  # Saturday worked after 国庆
        (date(2026, 10, 11), False),  # Sunday
    ],
)
def test_2026_calendar(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working


@pytest.mark.parametrize(
    ("days", "due"),
    [
        (1, date(2026, 2, 14)),  # the adjusted Saturday counts
        (2, date(2026, 2, 24)),  # then nine days of Spring Festival
        (5, date(2026, 2, 27)),
        (6, date(2026, 2, 28)),  # adjusted Saturday again
        (7, date(2026, 3, 2)),
    ],
)
def test_deadlines_across_spring_festival(days: int, due: date) -> None:
    assert CAL.add_working_days(date(2026, 2, 13), days) == (due, False)


def test_deadline_is_end_of_the_local_day_in_utc() -> None:
    # 2026-02-13 23:59 in Shanghai is still Friday the 13th locally.
    before_midnight = CAL.deadline(datetime(2026, 2, 13, 15, 59, tzinfo=UTC), 1)
    assert before_midnight.due_date == date(2026, 2, 14)
    assert before_midnight.at == datetime(2026, 2, 14, 15, 59, 59, tzinfo=UTC)
    # One minute later it is Saturday the 14th in Shanghai (still the 13th in UTC).
    after_midnight = CAL.deadline(datetime(2026, 2, 13, 16, 0, tzinfo=UTC), 1)
    assert after_midnight.due_date == date(2026, 2, 24)
    assert after_midnight.at == datetime(2026, 2, 24, 15, 59, 59, tzinfo=UTC)
    assert not after_midnight.provisional


def test_days_outside_the_calendar_make_the_deadline_provisional() -> None:
    late = CAL.deadline(datetime(2026, 12, 30, 2, 0, tzinfo=UTC), 3)
    assert late.provisional
    assert late.due_date == date(2027, 1, 4)  # weekends only in 2027: Thu 31, Fri 1, Mon 4
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.deadline(datetime(2026, 3, 2, 8, 0), 1)


def test_a_malformed_calendar_is_refused() -> None:
    with pytest.raises(CalendarError, match="not inside the year"):
        WorkCalendar.from_document(
            {"years": {"2027": {"holidays": [{"from": "2026-12-31", "to": "2027-01-01"}]}}}
        )
    with pytest.raises(CalendarError, match="both holiday and working day"):
        WorkCalendar.from_document(
            {
                "years": {
                    "2027": {
                        "holidays": [{"from": "2027-01-01", "to": "2027-01-01"}],
                        "workdays": [{"date": "2027-01-01"}],
                    }
                }
            }
        )


# --- list parameters ----------------------------------------------------------------------------


def test_bbox_parsing() -> None:
    box = BBox.parse("121.38,31.25,121.40,31.27")
    assert (box.min_lon, box.max_lat) == (121.38, 31.27)
    for bad in ("121.4,31.25,121.38,31.27", "1,2,3", "a,b,c,d", "200,0,201,1"):
        with pytest.raises(ApiError) as info:
            BBox.parse(bad)
        assert info.value.status == 400


def test_cursor_round_trip_and_garbage() -> None:
    case = Case(
        id="c-1",
        case_no="ZR01-1",
        concern_code="04-01",
        severity="low",
        lat=31.2,
        lon=121.4,
        created_at=datetime(2026, 11, 20, 2, 0, tzinfo=UTC),
    )
    assert decode_cursor(encode_cursor(case)) == (datetime(2026, 11, 20, 2, 0, tzinfo=UTC), "c-1")
    for garbage in ("bm9wZQ", "!!!", ""):
        with pytest.raises(ApiError):
            decode_cursor(garbage)
