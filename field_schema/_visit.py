"""走访 visit: a volunteer's door-to-door call on a household, shop or unit, and what came of it."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from field_schema._documents import DocId, Envelope, Location, LongText, Note, ShortText
from field_schema._errors import rule_error
from field_schema._labels import labelled

__all__ = ["VISIT_OUTCOME_LABELS", "VISIT_SUBJECT_LABELS", "VisitOutcome", "VisitSubject", "VisitV1"]

VisitSubject = Literal["household", "shop", "unit", "public_place", "other"]
VISIT_SUBJECT_LABELS = {
    "household": ("住户", "Household"),
    "shop": ("沿街商铺", "Street shop"),
    "unit": ("单位、楼宇", "Company or office building"),
    "public_place": ("公共场所", "Public place"),
    "other": ("其他", "Other"),
}
VisitOutcome = Literal["no_issue", "issue_found", "advice_given", "not_home", "refused"]
VISIT_OUTCOME_LABELS = {
    "no_issue": ("未发现问题", "No issue"),
    "issue_found": ("发现问题", "Issue found"),
    "advice_given": ("已宣传提醒", "Safety advice given"),
    "not_home": ("无人应答", "Nobody in"),
    "refused": ("拒绝走访", "Visit refused"),
}


class VisitV1(Envelope):
    """One visit. Problems found are recorded as hazard findings and linked by id."""

    type: Literal["visit"]
    schema_version: Literal[1]
    location: Annotated[Location, labelled("位置", "Location")]
    subject: Annotated[VisitSubject, labelled("走访对象", "Visited", choices=VISIT_SUBJECT_LABELS)]
    address: Annotated[ShortText, labelled("门牌号或店名", "Address or shop name")]
    outcome: Annotated[VisitOutcome, labelled("走访结果", "Outcome", choices=VISIT_OUTCOME_LABELS)]
    finding_ids: Annotated[
        list[DocId], Field(max_length=50), labelled("本次记录的隐患", "Hazard findings recorded")
    ] = []
    follow_up_needed: Annotated[bool, labelled("需要跟进", "Follow-up needed")] = False
    follow_up_note: Annotated[LongText, labelled("跟进事项", "What to follow up")] = ""
    note: Note = ""

    @model_validator(mode="after")
    def _follow_up_says_what(self) -> "VisitV1":
        if self.follow_up_needed and not self.follow_up_note:
            raise rule_error("follow_up_note", "需要跟进时请写明跟进事项", "say what needs following up")
        return self
