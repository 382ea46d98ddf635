"""设施安装 installation: campaign equipment (e-bike charging facilities, micro fire cabinets, other
emergency equipment) tracked from planned to installed, checked or faulty."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from field_schema._documents import Envelope, Location, LongText, Note, ShortText
from field_schema._errors import rule_error
from field_schema._labels import labelled

__all__ = [
    "INSTALLATION_KIND_LABELS",
    "INSTALLATION_STATE_LABELS",
    "InstallationKind",
    "InstallationState",
    "InstallationV1",
]

InstallationKind = Literal["charging_facility", "micro_fire_cabinet", "other"]
INSTALLATION_KIND_LABELS = {
    "charging_facility": ("非机动车充电设施", "E-bike charging facility"),
    "micro_fire_cabinet": ("微型消防柜", "Micro fire cabinet"),
    "other": ("其他应急设备", "Other emergency equipment"),
}
InstallationState = Literal["planned", "installed", "checked", "faulty"]
INSTALLATION_STATE_LABELS = {
    "planned": ("计划安装", "Planned"),
    "installed": ("已安装", "Installed"),
    "checked": ("已检查", "Checked"),
    "faulty": ("故障", "Faulty"),
}


class InstallationV1(Envelope):
    """One piece of equipment; its state moves as new revisions of the same document."""

    type: Literal["installation"]
    schema_version: Literal[1]
    location: Annotated[Location, labelled("位置", "Location")]
    kind: Annotated[InstallationKind, labelled("设施类型", "Equipment", choices=INSTALLATION_KIND_LABELS)]
    kind_other: Annotated[LongText, labelled("其他设备名称", "Other equipment name")] = ""
    state: Annotated[InstallationState, labelled("状态", "State", choices=INSTALLATION_STATE_LABELS)]
    campaign_id: Annotated[str, Field(min_length=1, max_length=64), labelled("专项行动编号", "Campaign id")]
    address: Annotated[ShortText, labelled("安装地点", "Address")]
    asset_code: Annotated[str | None, Field(max_length=64), labelled("设备编号", "Asset code")] = None
    capacity: Annotated[int | None, Field(ge=1, le=500), labelled("充电端口数", "Charging ports")] = None
    fault_note: Annotated[LongText, labelled("故障说明", "Fault description")] = ""
    note: Note = ""

    @model_validator(mode="after")
    def _explained(self) -> "InstallationV1":
        if self.kind == "other" and not self.kind_other:
            raise rule_error("kind_other", "请写明设备名称", "name the equipment when kind is 'other'")
        if self.state == "faulty" and not self.fault_note:
            raise rule_error(
                "fault_note", "故障状态需要说明故障情况", "describe the fault when state is 'faulty'"
            )
        return self
