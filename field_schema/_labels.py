"""Bilingual labels in the published JSON Schemas, so app teams can generate forms from them.

Every field shown to a person gets ``title`` ("中文 / English") and ``x-label`` ({zh, en}); every
closed set of choices gets ``x-enum-labels`` (value → {zh, en}). Chinese first, English second.
"""

from collections.abc import Mapping
from typing import Any

from pydantic import Field

__all__ = ["choice_labels", "labelled"]


def labelled(zh: str, en: str, *, choices: Mapping[str, tuple[str, str]] | None = None, **kwargs: Any) -> Any:
    """A pydantic ``Field`` carrying the label (and the choice labels, for a ``Literal`` field)."""
    extra: dict[str, Any] = {"x-label": {"zh": zh, "en": en}}
    if choices is not None:
        extra["x-enum-labels"] = choice_labels(choices)
    return Field(title=f"{zh} / {en}", json_schema_extra=extra, **kwargs)


def choice_labels(choices: Mapping[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
    return {value: {"zh": zh, "en": en} for value, (zh, en) in choices.items()}
