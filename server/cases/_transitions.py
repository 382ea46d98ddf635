"""The five-step closed loop (五步闭环) as an explicit transition table, with who may take each step.

Pure: no I/O. The service gathers the facts (role, scope, follow-ups) and asks ``check``; a refusal
names its rule and gives the reason in Chinese, then English.

    visit_survey ─► problem_found ─► coordinating ─► resolving ─► follow_up ─► closed
         走访调研        发现问题          协调协同        解决解释      跟踪问效      已办结
    closed ─► reopened ─► (back into the loop);  any open state ─► parked ─► (back where it fits)

Coordinators read cases but take no step; volunteers and department accounts take no step either
(departments acknowledge and report on their dispatches instead).
"""

from collections.abc import Mapping
from dataclasses import dataclass

from server.db.models import CASE_STATE_LABELS, CaseState, Role

__all__ = [
    "OPEN_STATES",
    "TRANSITIONS",
    "TransitionFacts",
    "TransitionRefused",
    "allowed_targets",
    "check_transition",
]

S = CaseState
_STEP_ROLES = frozenset({Role.GRID_LEADER, Role.ADMIN})

OPEN_STATES = frozenset(set(CaseState) - {CaseState.CLOSED})

TRANSITIONS: Mapping[tuple[CaseState, CaseState], frozenset[Role]] = {
    # Forward through the loop.
    (S.VISIT_SURVEY, S.PROBLEM_FOUND): _STEP_ROLES,
    (S.PROBLEM_FOUND, S.COORDINATING): _STEP_ROLES,
    (S.PROBLEM_FOUND, S.RESOLVING): _STEP_ROLES,  # the grid solves it without a department
    (S.COORDINATING, S.RESOLVING): _STEP_ROLES,
    (S.RESOLVING, S.FOLLOW_UP): _STEP_ROLES,
    (S.FOLLOW_UP, S.CLOSED): _STEP_ROLES,
    # Back one step when the facts change.
    (S.PROBLEM_FOUND, S.VISIT_SURVEY): _STEP_ROLES,  # needs another visit to be understood
    (S.RESOLVING, S.COORDINATING): _STEP_ROLES,  # another department is needed
    (S.FOLLOW_UP, S.RESOLVING): _STEP_ROLES,  # the follow-up shows it is not solved
    # Reopening a closed case, and where a reopened case goes.
    (S.CLOSED, S.REOPENED): _STEP_ROLES,
    (S.REOPENED, S.VISIT_SURVEY): _STEP_ROLES,
    (S.REOPENED, S.PROBLEM_FOUND): _STEP_ROLES,
    (S.REOPENED, S.COORDINATING): _STEP_ROLES,
    (S.REOPENED, S.RESOLVING): _STEP_ROLES,
    # Parking: waiting on something outside the grid; resumed where it fits.
    **{(state, S.PARKED): _STEP_ROLES for state in OPEN_STATES - {S.PARKED}},
    (S.PARKED, S.VISIT_SURVEY): _STEP_ROLES,
    (S.PARKED, S.PROBLEM_FOUND): _STEP_ROLES,
    (S.PARKED, S.COORDINATING): _STEP_ROLES,
    (S.PARKED, S.RESOLVING): _STEP_ROLES,
    (S.PARKED, S.FOLLOW_UP): _STEP_ROLES,
}


@dataclass(frozen=True)
class TransitionFacts:
    """What the rules need to know about the case and the person asking."""

    role: Role
    in_scope: bool
    """The case lies in the person's grids (always true for admins)."""
    has_follow_up: bool = False
    """A resident follow-up (回访) was recorded since the case was last (re)opened."""


class TransitionRefused(Exception):
    """A step the rules do not allow; ``status`` is 403 for who, 409 for what."""

    def __init__(self, status: int, rule: str, reason_zh: str, reason_en: str) -> None:
        super().__init__(reason_en)
        self.status = status
        self.rule = rule
        self.reason_zh = reason_zh
        self.reason_en = reason_en


def _zh(state: CaseState) -> str:
    return CASE_STATE_LABELS[state][0]


def allowed_targets(current: CaseState, role: Role) -> list[CaseState]:
    """States this role may move a case to from ``current`` (in loop order)."""
    return [to for to in CaseState if role in TRANSITIONS.get((current, to), frozenset())]


def check_transition(current: CaseState, target: CaseState, facts: TransitionFacts) -> None:
    """Raise ``TransitionRefused`` unless ``facts.role`` may move the case from ``current`` to ``target``."""
    if facts.role not in _STEP_ROLES:
        raise TransitionRefused(
            403,
            "role_cannot_transition",
            "只有网格长和管理员可以推进案件状态",
            f"only grid leaders and admins change a case's state (you are {facts.role})",
        )
    if not facts.in_scope:
        raise TransitionRefused(
            403, "outside_scope", "该案件不在您负责的网格", "the case lies outside your grids"
        )
    if current == target:
        raise TransitionRefused(
            409, "same_state", f"案件已处于“{_zh(current)}”", f"the case is already {current}"
        )
    roles = TRANSITIONS.get((current, target))
    if roles is None:
        options = allowed_targets(current, facts.role)
        zh = "、".join(_zh(s) for s in options) or "无"
        en = ", ".join(options) or "none"
        raise TransitionRefused(
            409,
            "transition_not_in_loop",
            f"五步闭环不允许从“{_zh(current)}”转到“{_zh(target)}”；可转到：{zh}",
            f"the five-step loop has no step from {current} to {target}; allowed: {en}",
        )
    if facts.role not in roles:
        raise TransitionRefused(
            403,
            "role_cannot_take_step",
            f"您的角色不能把案件从“{_zh(current)}”转到“{_zh(target)}”",
            f"your role ({facts.role}) may not move a case from {current} to {target}",
        )
    if target is CaseState.CLOSED and not facts.has_follow_up:
        raise TransitionRefused(
            409,
            "follow_up_required",
            "办结前须先完成居民回访并记录满意度",
            "record the resident follow-up (回访) and satisfaction before closing",
        )
