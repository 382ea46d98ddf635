"""Document conflicts as leaders read them, in the conflict list and in the case detail."""

from server.conflicts._public import ConflictPublic, ConflictsPublic, conflict_public

__all__ = ["ConflictPublic", "ConflictsPublic", "conflict_public"]
