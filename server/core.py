"""The one plugin that wires the application: routes, dependencies, errors, OpenAPI, lifespan."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins import InitPluginProtocol

from server.settings import Settings

__all__ = ["ApplicationCore"]


class ApplicationCore(InitPluginProtocol):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        from server.audit import list_admin_audit  # noqa: PLC0415  (import on init keeps module import light)
        from server.cases import CaseController  # noqa: PLC0415
        from server.deps import provide_principal, provide_runtime, provide_session  # noqa: PLC0415
        from server.errors import exception_handlers  # noqa: PLC0415
        from server.gateway import make_sync_handler  # noqa: PLC0415
        from server.merging import CaseMergingController, ConflictController  # noqa: PLC0415
        from server.refusals import list_refusals  # noqa: PLC0415
        from server.schemas import SchemaController  # noqa: PLC0415
        from server.syncstatus import my_sync_status, user_sync_status  # noqa: PLC0415
        from server.system import health, issue_token, metrics, worker_health  # noqa: PLC0415
        from server.taxonomy import TaxonomyController  # noqa: PLC0415
        from server.users import UserController, me  # noqa: PLC0415

        settings = self.settings
        # One line per CouchDB request at INFO would cost the gateway more than the request itself.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        app_config.route_handlers.extend(
            [
                make_sync_handler(settings.gateway.max_body_bytes),
                CaseController,
                CaseMergingController,
                ConflictController,
                UserController,
                me,
                list_refusals,
                list_admin_audit,
                my_sync_status,
                user_sync_status,
                SchemaController,
                TaxonomyController,
                health,
                worker_health,
                issue_token,
                metrics,
            ]
        )
        app_config.dependencies.update(
            {
                "runtime": Provide(provide_runtime, sync_to_thread=False),
                "session": Provide(provide_session),
                "principal": Provide(provide_principal),
            }
        )
        app_config.exception_handlers.update(exception_handlers)
        app_config.openapi_config = OpenAPIConfig(
            title="gridpatrol",
            version="0.1.0",
            description="网格巡查 / grid patrol case API and sync gateway",
        )
        if settings.gateway.cors_origins:
            app_config.cors_config = CORSConfig(
                allow_origins=list(settings.gateway.cors_origins),
                allow_credentials=True,
                allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "Accept", "X-Device-Id", "Range"],
                expose_headers=["ETag", "Content-Length", "Content-Range", "Accept-Ranges"],
            )
        app_config.lifespan.append(self._lifespan)
        return app_config

    @asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        from server.gateway import warm_id_catalog  # noqa: PLC0415
        from server.runtime import Runtime  # noqa: PLC0415

        runtime = await Runtime.open(self.settings)
        app.state.runtime = runtime
        await warm_id_catalog(runtime)
        try:
            yield
        finally:
            await runtime.close()
