"""Audit logs readable through the API."""

from server.audit._controller import AdminAuditPublic, AdminAuditsPublic, list_admin_audit

__all__ = ["AdminAuditPublic", "AdminAuditsPublic", "list_admin_audit"]
