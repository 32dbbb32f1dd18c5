"""REST routes: one ``APIHandler`` per route, authenticated and authorized."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from jupyter_qsecure import __version__

AUTH_RESOURCE = "qsecure"


class QSecureHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def ledger(self) -> Any:
        return self.settings["qsecure_ledger"]


class StatusHandler(QSecureHandler):
    """GET /qsecure/api/status: version, environment, ledger size and last checkpoint."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        settings = self.settings["qsecure"]
        ledger = self.ledger
        checkpoints = ledger.checkpoints()
        self.finish(
            json.dumps(
                {
                    "version": __version__,
                    "environment": settings.environment,
                    "save_mode": settings.save_mode,
                    "ledger": {
                        "url": ledger.store.display_url,
                        "entries": ledger.size(),
                        "checkpoint": checkpoints[-1].model_dump() if checkpoints else None,
                    },
                }
            )
        )


def setup_route_handlers(web_app: Any) -> None:
    base_url = web_app.settings["base_url"]
    routes = [(url_path_join(base_url, "qsecure", "api", "status"), StatusHandler)]
    web_app.add_handlers(".*$", routes)
