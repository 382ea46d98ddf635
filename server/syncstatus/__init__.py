"""Per-user sync state, honest about what is still pending on the server."""

from server.syncstatus._controller import SyncStatusPublic, my_sync_status, user_sync_status
from server.syncstatus._service import PENDING_CAP, ReplicationState, SyncStatus, sync_status

__all__ = [
    "PENDING_CAP",
    "ReplicationState",
    "SyncStatus",
    "SyncStatusPublic",
    "my_sync_status",
    "sync_status",
    "user_sync_status",
]
