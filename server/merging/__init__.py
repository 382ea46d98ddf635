"""Leaders' hands on the merge engine: split and merge cases, see and resolve document conflicts."""

from server.conflicts import ConflictPublic, ConflictsPublic
from server.merging._controller import CaseMergingController, ConflictController
from server.merging._schemas import CaseMergeInput, CaseSplitInput, ConflictResolveInput, MergeResultPublic
from server.merging._service import CaseMerger, ConflictDesk

__all__ = [
    "CaseMergeInput",
    "CaseMerger",
    "CaseMergingController",
    "CaseSplitInput",
    "ConflictController",
    "ConflictDesk",
    "ConflictPublic",
    "ConflictResolveInput",
    "ConflictsPublic",
    "MergeResultPublic",
]
