"""The ``ExtensionApp``: reads ``QSecure`` settings, opens the ledger, registers routes."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Instance

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.gate import SaveGate, recovery_store_from_settings
from jupyter_qsecure.ledger import Ledger
from jupyter_qsecure.scan import default_scanner

from .routes import setup_route_handlers
from .save_gate import ContentsGate, contents_routes


class QSecureExtension(ExtensionApp):
    """jupyter-qsecure inside Jupyter Server. All settings live on ``c.QSecure``."""

    name = "jupyter_qsecure_server"
    load_other_extensions = True

    settings_obj = Instance(QSecure, allow_none=True)
    ledger = Instance(Ledger, allow_none=True)
    save_gate = Instance(SaveGate, allow_none=True)

    def initialize_settings(self) -> None:
        # QSecure reads its own section of the server's config, plus env overrides.
        self.settings_obj = QSecure(config=self.serverapp.config, parent=self)
        self.ledger = Ledger.open(settings=self.settings_obj)
        self.save_gate = SaveGate(
            scanner=default_scanner(),
            recovery=recovery_store_from_settings(self.settings_obj),
            mode=self.settings_obj.save_mode,
            ledger=self.ledger,
            exact_values=self.injected_values,
        )
        ContentsGate(
            self.serverapp.contents_manager,
            self.save_gate,
            self.settings_obj.data_path / "staging",
            self.log,
        ).install()
        self.settings.update(
            {
                "qsecure": self.settings_obj,
                "qsecure_ledger": self.ledger,
                "qsecure_save_gate": self.save_gate,
            }
        )
        interval_ms = max(1.0, self.settings_obj.checkpoint_every_seconds) * 1000
        self._checkpoint_timer = PeriodicCallback(self._checkpoint_tick, interval_ms)
        self._checkpoint_timer.start()
        self.log.info("jupyter-qsecure: ledger at %s", self.ledger.store.display_url)

    def injected_values(self) -> list[str]:
        """Values handed to kernels, matched exactly by the save gate (credentials feature)."""
        registry = self.settings.get("qsecure_registry")
        return list(registry.all_values()) if registry is not None else []

    def _checkpoint_tick(self) -> None:
        if self.ledger is not None:
            self.ledger.checkpoint_if_due()

    def initialize_handlers(self) -> None:
        web_app = self.serverapp.web_app
        setup_route_handlers(web_app)
        # Same route as the server's contents API, registered by an extension so it is
        # matched first: only error reporting differs (the gate itself wraps the manager).
        web_app.add_handlers(".*$", contents_routes(web_app.settings["base_url"]))

    async def stop_extension(self) -> None:
        timer = getattr(self, "_checkpoint_timer", None)
        if timer is not None:
            timer.stop()
        if self.ledger is not None:
            self.ledger.checkpoint_if_due()
            self.ledger.close()
            self.ledger = None
