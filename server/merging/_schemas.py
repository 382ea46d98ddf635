"""Inputs and outputs of the split / merge and conflict endpoints."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CaseMergeInput",
    "CaseSplitInput",
    "ConflictResolveInput",
    "MergeResultPublic",
]

Reason = Annotated[str, Field(max_length=500)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CaseSplitInput(_Input):
    findings: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1, max_length=500)
    ]
    """Findings of this case that are a different problem: they move to one new case."""
    reason: Reason = ""


class CaseMergeInput(_Input):
    other_case_id: Annotated[str, Field(min_length=1, max_length=36)]
    """A case of the same grid that is the same problem: its findings move here, it is closed."""
    reason: Reason = ""


class MergeResultPublic(BaseModel):
    case_id: str
    case_no: str
    other_case_id: str
    other_case_no: str
    moved_findings: list[str]


class ConflictResolveInput(_Input):
    """Either one whole branch (``choose``) or, field by field, the branch to take each from
    (``fields``; fields not named keep the winning branch's value)."""

    choose: Annotated[str | None, Field(max_length=200)] = None
    fields: dict[str, str] | None = None
    reason: Reason = ""

    @model_validator(mode="after")
    def _one_of(self) -> "ConflictResolveInput":
        if (self.choose is None) == (not self.fields):
            raise ValueError("give either choose (a revision) or fields (field -> revision)")
        return self
