"""Grid case records: the API leaders use, the five-step loop, dispatch and follow-up."""

from server.cases._access import CASE_READER_ROLES, CASE_WRITER_ROLES, CaseAccess
from server.cases._calendar import CalendarError, Deadline, WorkCalendar, load_calendar
from server.cases._controller import CaseController
from server.cases._dispatching import DispatchActions
from server.cases._lifecycle import CaseActions
from server.cases._query import BBox, CaseFilters
from server.cases._schemas import CaseDetailPublic, CasePublic, CasesPublic, FindingPublic, PhotoLink
from server.cases._service import CaseReader
from server.cases._transitions import TRANSITIONS, TransitionFacts, TransitionRefused, check_transition

__all__ = [
    "CASE_READER_ROLES",
    "CASE_WRITER_ROLES",
    "TRANSITIONS",
    "BBox",
    "CalendarError",
    "CaseAccess",
    "CaseActions",
    "CaseController",
    "CaseDetailPublic",
    "CaseFilters",
    "CasePublic",
    "CaseReader",
    "CasesPublic",
    "Deadline",
    "DispatchActions",
    "FindingPublic",
    "PhotoLink",
    "TransitionFacts",
    "TransitionRefused",
    "WorkCalendar",
    "check_transition",
    "load_calendar",
]
