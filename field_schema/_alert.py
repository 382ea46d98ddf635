"""走失人员警报 missing-person alert: the emergency fast path (e.g. an elder with Alzheimer's lost in
the street). ``location`` is where the person was last seen; a photo travels as an attachment."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from field_schema._documents import Envelope, Location
from field_schema._errors import rule_error
from field_schema._labels import labelled

__all__ = ["ALERT_STATUS_LABELS", "SEX_LABELS", "AlertStatus", "MissingPersonV1", "Sex"]

Sex = Literal["female", "male", "unknown"]
SEX_LABELS = {"female": ("女", "Female"), "male": ("男", "Male"), "unknown": ("不详", "Unknown")}
AlertStatus = Literal["open", "found", "cancelled"]
ALERT_STATUS_LABELS = {
    "open": ("寻找中", "Searching"),
    "found": ("已找到", "Found"),
    "cancelled": ("已撤销", "Cancelled"),
}


class MissingPersonV1(Envelope):
    type: Literal["missing_person"]
    schema_version: Literal[1]
    location: Annotated[Location, labelled("最后出现地点", "Last seen at (place)")]
    last_seen_at: Annotated[datetime, labelled("最后出现时间", "Last seen at (time)")]
    description: Annotated[
        str, Field(min_length=1, max_length=2000), labelled("体貌特征与衣着", "Appearance and clothing")
    ]
    name: Annotated[str | None, Field(max_length=100), labelled("姓名", "Name")] = None
    age: Annotated[int | None, Field(ge=0, le=130), labelled("年龄", "Age")] = None
    sex: Annotated[Sex, labelled("性别", "Sex", choices=SEX_LABELS)] = "unknown"
    conditions: Annotated[
        str, Field(max_length=1000), labelled("健康状况（如认知障碍）", "Health conditions (e.g. dementia)")
    ] = ""
    contact_phone: Annotated[
        str | None,
        Field(max_length=32, pattern=r"^\+?[0-9][0-9 \-]{2,30}$"),
        labelled("联系电话", "Contact phone"),
    ] = None
    status: Annotated[AlertStatus, labelled("状态", "Status", choices=ALERT_STATUS_LABELS)] = "open"
    found_at: Annotated[datetime | None, labelled("找到时间", "Found at")] = None

    @model_validator(mode="after")
    def _found_has_a_time(self) -> "MissingPersonV1":
        if self.status == "found" and self.found_at is None:
            raise rule_error(
                "found_at", "已找到时请填写找到时间", "found_at is required when status is 'found'"
            )
        return self
