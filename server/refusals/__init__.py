"""Refusals recorded by the sync gateway: written at push, listed for the leaders concerned."""

from server.refusals._controller import RefusalPublic, RefusalsPublic, list_refusals, refusal_public
from server.refusals._record import filed_under, fingerprint, fit_refusal, record_refusals

__all__ = [
    "RefusalPublic",
    "RefusalsPublic",
    "filed_under",
    "fingerprint",
    "fit_refusal",
    "list_refusals",
    "record_refusals",
    "refusal_public",
]
