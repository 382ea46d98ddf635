"""The sync gateway: CouchDB's replication protocol for unmodified PouchDB clients, scoped per user."""

from server.gateway._handlers import SYNC_PREFIX, make_sync_handler
from server.gateway._lookup import warm_id_catalog
from server.gateway._virtual import VirtualDatabase

__all__ = ["SYNC_PREFIX", "VirtualDatabase", "make_sync_handler", "user_view", "warm_id_catalog"]

user_view = VirtualDatabase.user_view
