"""Validation errors that name a field path, in Chinese first and English second.

pydantic's own messages are English only; ``field_errors`` pairs each with a Chinese message by
error type. Cross-field rules (``rule_error``) carry both languages and the field they are about,
because an error raised by a model validator has no location of its own.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

__all__ = ["RULE_ERROR", "DocumentInvalid", "FieldError", "field_errors", "rule_error"]

RULE_ERROR = "document_rule"


@dataclass(frozen=True)
class FieldError:
    path: str
    message_zh: str
    message_en: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message_zh} / {self.message_en}"


class DocumentInvalid(ValueError):
    """A document failed validation; ``errors`` name each field path."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def rule_error(field: str, message_zh: str, message_en: str) -> PydanticCustomError:
    """An error for a rule between fields, reported on ``field`` (relative to the model raising it)."""
    return PydanticCustomError(RULE_ERROR, "{en}", {"zh": message_zh, "en": message_en, "field": field})


_ZH_MESSAGES = {
    "missing": "缺少必填字段",
    "literal_error": "取值不在允许范围内",
    "enum": "取值不在允许范围内",
    "greater_than_equal": "数值过小",
    "less_than_equal": "数值过大",
    "greater_than": "数值过小",
    "less_than": "数值过大",
    "finite_number": "必须是有限数值",
    "float_parsing": "必须是数字",
    "float_type": "必须是数字",
    "int_parsing": "必须是整数",
    "int_type": "必须是整数",
    "int_from_float": "必须是整数",
    "bool_parsing": "必须是 true 或 false",
    "bool_type": "必须是 true 或 false",
    "string_type": "必须是文本",
    "string_too_short": "不能为空",
    "string_too_long": "文本过长",
    "string_pattern_mismatch": "格式不正确",
    "list_type": "必须是列表",
    "too_short": "条目太少",
    "too_long": "条目太多",
    "datetime_parsing": "时间格式不正确（应为 ISO 8601）",
    "datetime_type": "时间格式不正确（应为 ISO 8601）",
    "datetime_from_date_parsing": "时间格式不正确（应为 ISO 8601）",
    "timezone_aware": "时间必须带时区",
    "model_type": "必须是对象",
    "model_attributes_type": "必须是对象",
    "dict_type": "必须是对象",
    "none_required": "必须为空",
}


def _path(parts: Iterable[Any]) -> str:
    return ".".join(str(part) for part in parts) or "(document)"


def field_errors(exc: ValidationError) -> list[FieldError]:
    """One ``FieldError`` per pydantic error, with a dotted path (list items by index)."""
    errors = []
    for error in exc.errors(include_url=False):
        ctx = error.get("ctx") or {}
        if error["type"] == RULE_ERROR:
            errors.append(FieldError(_path([*error["loc"], ctx["field"]]), str(ctx["zh"]), str(ctx["en"])))
            continue
        errors.append(
            FieldError(_path(error["loc"]), _ZH_MESSAGES.get(error["type"], "取值无效"), error["msg"])
        )
    return errors
