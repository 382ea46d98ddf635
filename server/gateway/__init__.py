"""The sync gateway: CouchDB's replication protocol for unmodified PouchDB clients, scoped per user."""

from server.gateway._handlers import SYNC_PREFIX, make_sync_handler

__all__ = ["SYNC_PREFIX", "make_sync_handler"]
