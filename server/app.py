"""``create_app()``: the Litestar application (sync gateway + case API)."""

from litestar import Litestar

from server.core import ApplicationCore
from server.settings import Settings, get_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> Litestar:
    return Litestar(plugins=[ApplicationCore(settings or get_settings())])
