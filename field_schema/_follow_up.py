"""回访 resident follow-up: after a case is solved or explained, the resident is asked whether they
are satisfied (the last step of the five-step loop, 跟踪问效)."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from field_schema._documents import Envelope, LongText
from field_schema._errors import rule_error
from field_schema._labels import labelled

__all__ = ["FOLLOW_UP_METHOD_LABELS", "FollowUpMethod", "FollowUpV1"]

FollowUpMethod = Literal["phone", "visit", "online"]
FOLLOW_UP_METHOD_LABELS = {
    "phone": ("电话回访", "By phone"),
    "visit": ("上门回访", "In person"),
    "online": ("线上回访", "Online"),
}


class FollowUpV1(Envelope):
    """A follow-up refers to a case, not a place: ``location`` is optional, ``grid_hint`` suffices."""

    type: Literal["follow_up"]
    schema_version: Literal[1]
    case_id: Annotated[str, Field(min_length=1, max_length=64), labelled("案件编号（系统）", "Case id")]
    case_no: Annotated[str | None, Field(max_length=64), labelled("案件号", "Case number")] = None
    satisfied: Annotated[bool, labelled("居民是否满意", "Resident satisfied")]
    comment: Annotated[LongText, labelled("居民意见", "Resident's comment")] = ""
    method: Annotated[FollowUpMethod, labelled("回访方式", "Method", choices=FOLLOW_UP_METHOD_LABELS)] = (
        "phone"
    )

    @model_validator(mode="after")
    def _dissatisfaction_has_a_reason(self) -> "FollowUpV1":
        # The grid leader must know why, to reopen or explain (解决解释).
        if not self.satisfied and not self.comment:
            raise rule_error("comment", "居民不满意时请记录原因", "record why the resident is not satisfied")
        return self
