"""Errors the gateway answers with, always CouchDB's ``{"error", "reason"}`` shape."""

from typing import Any

__all__ = ["GatewayError", "bilingual", "error_body"]


def bilingual(zh: str, en: str) -> str:
    """One reason string for people: Simplified Chinese first, English second."""
    return f"{zh} / {en}"


def error_body(error: str, reason: str) -> dict[str, Any]:
    return {"error": error, "reason": reason}


class GatewayError(Exception):
    def __init__(self, status: int, error: str, reason_zh: str, reason_en: str) -> None:
        super().__init__(reason_en)
        self.status = status
        self.error = error
        self.reason = bilingual(reason_zh, reason_en)

    @classmethod
    def not_found(cls, what_zh: str = "不存在", what_en: str = "missing") -> "GatewayError":
        return cls(404, "not_found", what_zh, what_en)

    @classmethod
    def forbidden(cls, reason_zh: str, reason_en: str) -> "GatewayError":
        return cls(403, "forbidden", reason_zh, reason_en)

    @classmethod
    def bad_request(cls, reason_zh: str, reason_en: str) -> "GatewayError":
        return cls(400, "bad_request", reason_zh, reason_en)

    @classmethod
    def from_couch(cls, status: int, error: str, reason: str) -> "GatewayError":
        """An error whose reason is already final (ours bilingual, or CouchDB's own words)."""
        made = cls(status, error, "", "")
        made.reason = reason
        return made

    def body(self) -> dict[str, Any]:
        return error_body(self.error, self.reason)
