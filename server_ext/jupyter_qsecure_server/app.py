"""The ``ExtensionApp``: reads ``QSecure`` settings, opens the ledger, registers routes."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Instance

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.ledger import Ledger

from .routes import setup_route_handlers


class QSecureExtension(ExtensionApp):
    """jupyter-qsecure inside Jupyter Server. All settings live on ``c.QSecure``."""

    name = "jupyter_qsecure_server"
    load_other_extensions = True

    settings_obj = Instance(QSecure, allow_none=True)
    ledger = Instance(Ledger, allow_none=True)

    def initialize_settings(self) -> None:
        # QSecure reads its own section of the server's config, plus env overrides.
        self.settings_obj = QSecure(config=self.serverapp.config, parent=self)
        self.ledger = Ledger.open(settings=self.settings_obj)
        self.settings.update({"qsecure": self.settings_obj, "qsecure_ledger": self.ledger})
        interval_ms = max(1.0, self.settings_obj.checkpoint_every_seconds) * 1000
        self._checkpoint_timer = PeriodicCallback(self._checkpoint_tick, interval_ms)
        self._checkpoint_timer.start()
        self.log.info("jupyter-qsecure: ledger at %s", self.ledger.store.display_url)

    def _checkpoint_tick(self) -> None:
        if self.ledger is not None:
            self.ledger.checkpoint_if_due()

    def initialize_handlers(self) -> None:
        setup_route_handlers(self.serverapp.web_app)

    async def stop_extension(self) -> None:
        timer = getattr(self, "_checkpoint_timer", None)
        if timer is not None:
            timer.stop()
        if self.ledger is not None:
            self.ledger.checkpoint_if_due()
            self.ledger.close()
            self.ledger = None
