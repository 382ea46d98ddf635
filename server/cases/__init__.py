"""Grid case records: the API leaders use."""

from server.cases._controller import CaseController
from server.cases._schemas import CasePublic, CasesPublic, FindingPublic, PhotoLink
from server.cases._service import CASE_READER_ROLES, CaseReader

__all__ = [
    "CASE_READER_ROLES",
    "CaseController",
    "CasePublic",
    "CaseReader",
    "CasesPublic",
    "FindingPublic",
    "PhotoLink",
]
