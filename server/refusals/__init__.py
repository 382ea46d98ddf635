"""Refusals recorded by the sync gateway."""

from server.refusals._controller import RefusalPublic, RefusalsPublic, list_refusals, refusal_public

__all__ = ["RefusalPublic", "RefusalsPublic", "list_refusals", "refusal_public"]
