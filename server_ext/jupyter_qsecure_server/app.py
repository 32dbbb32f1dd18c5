"""The ``ExtensionApp``: reads ``QSecure`` settings, opens the ledger, registers routes."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from tornado.ioloop import PeriodicCallback
from traitlets import Instance

from jupyter_qsecure.config import ConfigWatcher, QSecure, load_jupyter_config, restart_needed
from jupyter_qsecure.errors import QSecureError, SigningError
from jupyter_qsecure.gate import SaveGate, recovery_store_from_settings
from jupyter_qsecure.jobs.approval import ApprovalVerifier, ApproverTrust
from jupyter_qsecure.jobs.executor import Executor, executor_from_settings
from jupyter_qsecure.jobs.parse_pool import ParsePool
from jupyter_qsecure.jobs.policy import Policy, PolicyEngine, UsageTracker
from jupyter_qsecure.jobs.service import JobService
from jupyter_qsecure.jobs.wiring import job_signer, trust_signer
from jupyter_qsecure.ledger import Ledger
from jupyter_qsecure.scan import fingerprinter_from_settings, scanner_for_settings
from jupyter_qsecure.scan.fingerprints import set_process_fingerprinter
from jupyter_qsecure.served_paths import ServedPrivateFiles, check_not_served, private_paths
from jupyter_qsecure.signing.transit import TransitSigner
from jupyter_qsecure.vault import layout
from jupyter_qsecure.vault.broker import CredentialBroker
from jupyter_qsecure.vault.client import client_from_settings
from jupyter_qsecure.vault.exposure import ExposureLog
from jupyter_qsecure.vault.injected import InjectedRegistry
from jupyter_qsecure.vault.layout import approver_name, approver_policy, approver_transit_key
from jupyter_qsecure.vault.local_tokens import LocalKernelTokens
from jupyter_qsecure.vault.overview import OpenBaoHealth
from jupyter_qsecure.vault.registry import ValueRegistry
from jupyter_qsecure.vault.resolve import embedded_from_settings, external_vault_addr
from jupyter_qsecure.vault.secret_store import ChangeStamp, SecretStore
from jupyter_qsecure.vault.secrets_spec import parse_secret_specs

from .credentials import CredentialService
from .defaults import make_qsecure_kernel_default
from .fail_closed import run_or_stop
from .file_masking import Masking, check_routes, file_routes, masked_contents_routes
from .jobs_routes import job_routes
from .kernel_output import KernelOutputLog
from .kernel_ws import QSecureKernelConnection
from .routes import setup_route_handlers
from .save_gate import ContentsGate, contents_routes
from .served import served_trees
from .services import Services

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp


class QSecureExtension(ExtensionApp):
    """jupyter-qsecure inside Jupyter Server. All settings live on ``c.QSecure``."""

    name = "jupyter_qsecure_server"
    load_other_extensions = True

    settings_obj = Instance(QSecure, allow_none=True)
    ledger = Instance(Ledger, allow_none=True)
    save_gate = Instance(SaveGate, allow_none=True)
    injected = Instance(InjectedRegistry, allow_none=True)

    credentials = Instance(CredentialService, allow_none=True)
    kernel_output = Instance(KernelOutputLog, allow_none=True)
    contents_gate = Instance(ContentsGate, allow_none=True)
    jobs = Instance(JobService, allow_none=True)

    # Fail closed: an error while linking or loading stops the server (fail_closed.py).
    def _link_jupyter_server_extension(self, serverapp: Any) -> None:
        run_or_stop(
            "link its server extension",
            serverapp.log,
            lambda: super(QSecureExtension, self)._link_jupyter_server_extension(serverapp),
        )

    @classmethod
    def _load_jupyter_server_extension(cls, serverapp: Any) -> None:
        run_or_stop(
            "start its server extension",
            serverapp.log,
            lambda: super(QSecureExtension, cls)._load_jupyter_server_extension(serverapp),  # type: ignore[no-untyped-call]  # jupyter_server leaves it unannotated
        )

    @property
    def _qsecure(self) -> QSecure:
        """The settings, once ``initialize_settings`` has read them."""
        if self.settings_obj is None:
            raise RuntimeError("jupyter-qsecure settings are read in initialize_settings")
        return self.settings_obj

    @property
    def _server(self) -> ServerApp:
        if self.serverapp is None:
            raise RuntimeError("jupyter-qsecure runs as an extension of a Jupyter Server")
        return self.serverapp

    def _read_settings(self) -> QSecure:
        """``c.QSecure`` as the command line and the kernel read it: from the
        ``jupyter_qsecure_config`` and ``jupyter_server_config`` files of the server's
        config dirs, under the server's own config (its files, command line and other
        sources win), plus environment overrides. Remembers the files for
        :meth:`_apply_changes`."""
        dirs = list(self._server.config_file_paths)
        config = load_jupyter_config(dirs=dirs)
        config.merge(self._server.config)
        self._config_watcher = ConfigWatcher(dirs)
        settings = QSecure(config=config, parent=self)
        # A value of `secrets` from somewhere other than those files (the command line, a
        # jupyter_lab_config file) pins it: a change in the files does not override it.
        self._secrets_pinned = settings.secrets != self._config_watcher.current.secrets
        return settings

    def initialize_settings(self) -> None:
        settings = self.settings_obj = self._read_settings()
        self._refuse_to_serve_private_files(settings)
        # The server's own OpenBao token must never reach a kernel: kernels inherit the
        # server's environment, so take it out now, before any kernel is started.
        for variable in ("BAO_TOKEN", "VAULT_TOKEN"):
            os.environ.pop(variable, None)
        self.ledger = Ledger.open(settings=settings)
        # Findings, 422 bodies and ledger entries carry fingerprints under this key (in
        # OpenBao when one is configured, else a local key file); so does the registry of
        # injected values, which the gate also matches (it survives a server restart).
        fingerprinter = fingerprinter_from_settings(settings, create=True)
        set_process_fingerprinter(fingerprinter)
        self.injected = InjectedRegistry.for_settings(settings, fingerprinter)
        self.save_gate = SaveGate(
            scanner=scanner_for_settings(settings),
            recovery=recovery_store_from_settings(settings),
            mode=settings.save_mode,
            ledger=self.ledger,
            exact_values=self.injected_values,
            injected=self.injected.index,
            root_dir=getattr(self._server.contents_manager, "root_dir", None),
        )
        self.contents_gate = ContentsGate(
            self._server.contents_manager,
            self.save_gate,
            settings.data_path / "staging",
            self.log,
            override_allowed=settings.override_allowed(),
        )
        self.contents_gate.install()
        if settings.allow_override and not settings.override_allowed():
            self.log.warning(
                "jupyter-qsecure: c.QSecure.allow_override is ignored in prod: refused saves "
                "cannot be overridden there"
            )
        self._setup_credentials()
        self._setup_jobs()
        self._secrets_stamp = ChangeStamp(settings.data_path)
        if self.credentials is not None:
            self.credentials.before_fetch = self._apply_changes
        make_qsecure_kernel_default(self._server, self.log)
        # Handlers get the services as route kwargs (initialize_handlers); the same
        # objects stay in the web app's settings for the kernel websocket connection
        # class (not a route) and for tests.
        assert self.contents_gate is not None and self.jobs is not None
        services = self.services = Services(
            settings=settings,
            ledger=self.ledger,
            save_gate=self.save_gate,
            contents_gate=self.contents_gate,
            jobs=self.jobs,
            openbao_health=OpenBaoHealth(
                settings.vault_addr,
                embedded=bool(settings.vault_addr)
                and external_vault_addr(settings, embedded_from_settings(settings)) is None,
            ),
            exposures=ExposureLog(self.ledger),
            credentials=self.credentials,
            secret_store=self._secret_store(),
        )
        self.settings.update(
            {
                "qsecure": settings,
                "qsecure_secret_store": services.secret_store,
                "qsecure_openbao_health": services.openbao_health,
                "qsecure_ledger": self.ledger,
                "qsecure_save_gate": self.save_gate,
                "qsecure_contents_gate": self.contents_gate,
                "qsecure_credentials": self.credentials,
                "qsecure_registry": services.registry,
                "qsecure_injected": self.injected,
                "qsecure_jobs": self.jobs,
                "qsecure_exposures": services.exposures,
                "qsecure_kernel_output": self.kernel_output,
            }
        )
        interval_ms = max(1.0, settings.checkpoint_every_seconds) * 1000
        self._checkpoint_timer = PeriodicCallback(self._checkpoint_tick, interval_ms)
        self._checkpoint_timer.start()
        self.log.info("jupyter-qsecure: ledger at %s", self.ledger.store.display_url)

    def _secret_store(self) -> SecretStore | None:
        """Secrets stored by name, through the server's own OpenBao token (None without
        OpenBao)."""
        broker = self.credentials.broker if self.credentials is not None else None
        client = getattr(broker, "server_client", None)
        if client is None:
            return None
        return SecretStore(client, self._qsecure.environment)

    def _apply_changes(self) -> None:
        """Before an execution's credentials are fetched: apply a changed ``secrets``
        mapping from the config files, and secrets stored or deleted by the command line
        (``secret put|rm`` replace a stamp in the data dir). Other changed settings are
        logged as needing a restart. Costs a few ``stat`` calls when nothing changed."""
        broker = self.credentials.broker if self.credentials is not None else None
        if not isinstance(broker, CredentialBroker):
            return
        if self._secrets_stamp.changed():
            broker.refresh()
        try:
            change = self._config_watcher.poll()
        except QSecureError as exc:
            self.log.error(
                "jupyter-qsecure: a config file changed but cannot be read (%s); the server "
                "keeps its current settings",
                exc.message,
            )
            return
        if change is None:
            return
        before, now = change
        settings = self._qsecure
        if now.secrets != before.secrets:
            if self._secrets_pinned:
                self.log.warning(
                    "jupyter-qsecure: c.QSecure.secrets changed in a config file, but the "
                    "server's command line (or another config file) sets it: restart the "
                    "server to apply the change"
                )
            else:
                try:
                    specs = parse_secret_specs(now.secrets, settings.environment)
                except QSecureError as exc:
                    self.log.error(
                        "jupyter-qsecure: the changed c.QSecure.secrets is not applied: %s%s",
                        exc.message,
                        f" ({exc.hint})" if exc.hint else "",
                    )
                else:
                    broker.set_specs(specs)
                    settings.secrets = dict(now.secrets)
                    self.log.info(
                        "jupyter-qsecure: applied the changed c.QSecure.secrets (%d secrets "
                        "configured); kernels read them at their next execution",
                        len(specs),
                    )
        stale = restart_needed(before, now)
        if stale:
            self.log.warning(
                "jupyter-qsecure: changed in the config files, applied only when the server "
                "restarts: %s",
                ", ".join(f"c.QSecure.{name}" for name in stale),
            )

    def _refuse_to_serve_private_files(self, settings: QSecure) -> None:
        """Stop the server when the data dir (recovery copies and their key, signing keys,
        the ledger) would be served by the contents API; before anything is written there.

        SystemExit, not an exception: Jupyter Server logs an extension's exceptions and
        starts without it, which would serve those files with no save gate either.
        """
        try:
            check_not_served(private_paths(settings), served_trees(self._server))
        except ServedPrivateFiles as exc:
            raise SystemExit(f"{exc.message}\n  hint: {exc.hint}") from None

    def _setup_credentials(self) -> None:
        """Credential broker and output masking, when an OpenBao/Vault is configured."""
        # ExtensionApp copies the web app's settings into self.settings before this and
        # writes them back after: change the copy, or the change is overwritten.
        configured = self.settings.get("kernel_websocket_connection_class")
        if configured is not None and not issubclass(QSecureKernelConnection, configured):
            # Fail closed: another connection class (e.g. a gateway) would bypass masking.
            raise RuntimeError(
                f"jupyter-qsecure masks kernel output in its own websocket connection class, "
                f"but the server is configured with {configured.__name__}; remove that setting "
                "or disable jupyter_qsecure_server"
            )
        self.settings["kernel_websocket_connection_class"] = QSecureKernelConnection
        settings = self._qsecure
        # Values stay masked and matched after their kernel stops, while they may be
        # valid; each injection is recorded (fingerprints only) in the registry file.
        registry = ValueRegistry(
            retention_seconds=float(settings.fingerprint_retention_days) * 86400.0,
            on_register=self.injected.record if self.injected is not None else None,
        )
        broker_url = url_path_join(self._server.connection_url, "qsecure", "api", "jobs")
        if not settings.vault_addr:
            self.log.info(
                "jupyter-qsecure: no OpenBao/Vault configured: kernels get local broker tokens "
                "for %qsubmit, and secrets.get has nothing to hand out"
            )
            local = LocalKernelTokens(
                environment=settings.environment, registry=registry, ledger=self.ledger
            )
            self.credentials = CredentialService(
                local, registry, "", broker_url, mask_fragment_min=settings.mask_fragment_min
            )
            self._install_kernel_hooks(self.credentials)
            return
        client = client_from_settings(settings)
        broker = CredentialBroker(
            client,
            environment=settings.environment,
            specs=parse_secret_specs(settings.secrets, settings.environment),
            ledger=self.ledger,
            registry=registry,
            vault_addr=settings.vault_addr,
        )
        self.credentials = CredentialService(
            broker,
            registry,
            settings.vault_addr,
            broker_url,
            mask_fragment_min=settings.mask_fragment_min,
        )
        self._install_kernel_hooks(self.credentials)
        self.log.info(
            "jupyter-qsecure: credentials from %s for environment %s (%d secrets configured, "
            "and every name stored under secret/%s/)",
            settings.vault_addr,
            settings.environment,
            len(broker.specs),
            layout.kv_prefix(settings.environment),
        )

    def _install_kernel_hooks(self, credentials: CredentialService) -> None:
        # Kernels' own stdout/stderr reach the log masked by the websocket's masker;
        # installed before the credential hooks so that a shutdown drains the pipes
        # before the values are revoked.
        self.kernel_output = KernelOutputLog(credentials.masker, self.log)
        self.kernel_output.install(self._server.kernel_manager)
        credentials.install_kernel_hooks(self._server.kernel_manager)

    def _setup_jobs(self) -> None:
        """The %qsubmit broker: policy, signer, executor, ledger; kernels' tokens identify."""
        # Qiskit must be imported on the main thread before worker threads load QPY.
        import qiskit.qpy  # noqa: F401

        settings = self._qsecure
        assert self.credentials is not None and self.ledger is not None
        signer = job_signer(settings, batching=True)
        # Trust the job signer's public keys for offline checks (`jupyter qsecure replay`).
        trust_signer(settings, signer)
        policy = Policy.load(settings.policy_file or None, settings.environment)
        usage = UsageTracker.from_ledger(self.ledger)
        approvals = self._approval_verifier()

        per_user = settings.resolved_job_queue_per_user()

        def executor() -> Executor:
            if settings.job_executor == "dask":
                return executor_from_settings(
                    "dask",
                    address=settings.dask_scheduler or None,
                    max_queued=settings.job_queue_size,
                    max_queued_per_owner=per_user,
                )
            return executor_from_settings(
                "local",
                max_workers=settings.job_workers,
                max_queued=settings.job_queue_size,
                max_queued_per_owner=per_user,
                spare_workers=max(0, settings.job_spare_workers),
            )

        self.jobs = JobService(
            identify=self.credentials.broker.identify,
            engine=PolicyEngine(policy, usage=usage),
            signer=signer,
            ledger=self.ledger,
            executor=executor,
            environment=settings.environment,
            archive_dir=settings.data_path / "jobs",
            job_timeout=settings.job_timeout_seconds,
            aer_threads=settings.job_aer_threads,
            identity_cache_seconds=settings.job_identity_cache_seconds,
            # queued + running jobs each hold a broker thread while they run (local
            # executor: job_workers running; a Dask cluster may run more at once)
            max_in_flight=settings.job_queue_size
            + max(settings.job_workers + settings.job_spare_workers, 32),
            approvals=approvals,
            # no process starts until the first submission; bad settings fail here
            parser=ParsePool(
                settings.job_parse_workers,
                memory_mb=settings.job_parse_memory_mb,
                cpu_seconds=settings.job_parse_cpu_seconds,
            ),
        )
        self.credentials.on_revoke.append(self.jobs.forget_kernel)
        self._approvals_seen = self.ledger.size()
        self._approvals_lock = asyncio.Lock()
        self._approvals_timer = PeriodicCallback(self._approvals_tick, 1000)
        self._approvals_timer.start()
        self._records_timer = PeriodicCallback(self._records_tick, 1000)
        self._records_timer.start()
        self.log.info(
            "jupyter-qsecure: job broker on %s executor, policy %s (%s), signer %s; "
            "heavy runs approved by %s",
            settings.job_executor,
            policy.version,
            policy.sha256[:12],
            signer.key_id,
            approvals.describe(),
        )

    def _approval_verifier(self) -> ApprovalVerifier:
        """Who may approve heavy runs, fixed now (see ``jupyter_qsecure.jobs.approval``):
        the local approvers listed in ``job_approvers_file``, and with OpenBao the holders
        of the environment's approver policy (its transit key's public keys)."""
        settings = self._qsecure
        env = settings.environment
        trust = ApproverTrust.load(settings.resolved_approvers_file())
        if not settings.vault_addr:
            return ApprovalVerifier(env, local=trust.approvers)
        client = client_from_settings(settings)
        keys: list[Any] = []
        try:
            keys = TransitSigner(
                client, mount=settings.ledger_transit_mount, key_name=approver_transit_key(env)
            ).public_keys()
        except SigningError as exc:
            self.log.warning(
                "jupyter-qsecure: no OpenBao approver key for %s (%s): only local approvers "
                "can approve heavy runs; `jupyter qsecure vault up` (or layout.bootstrap with an "
                "admin token) creates it",
                env,
                exc.message,
            )

        def lookup_accessor(accessor: str) -> dict[str, Any] | None:
            try:
                return dict(client.auth.token.lookup_accessor(accessor)["data"])
            except Exception:  # expired, revoked, unknown, or OpenBao unreachable
                return None

        return ApprovalVerifier(
            env,
            local=trust.approvers,
            openbao_keys=keys,
            lookup_accessor=lookup_accessor,
            approver_policy=approver_policy(env),
            name_of=approver_name,
        )

    async def _approvals_tick(self) -> None:
        """Check approvals (``jupyter qsecure jobs approve``) recorded since the last tick;
        release the heavy runs whose approval holds (``JobService.take_approvals``)."""
        if self.ledger is None or self.jobs is None or self._approvals_lock.locked():
            return
        async with self._approvals_lock:
            size = self.ledger.size()
            if size == self._approvals_seen:
                return
            self._approvals_seen = await self.jobs.call(
                self.jobs.take_approvals, self._approvals_seen, size
            )

    async def _records_tick(self) -> None:
        """Record the jobs a ledger outage left unrecorded, once it takes writes again."""
        jobs = self.jobs
        if jobs is None or not jobs.has_unwritten():
            return
        try:
            await jobs.call(jobs.flush_unwritten)
        except Exception as exc:
            self.log.warning(
                "jupyter-qsecure: the ledger still refuses writes (%s); unrecorded jobs wait",
                type(exc).__name__,
            )

    def injected_values(self) -> list[str]:
        """Values handed to kernels (also of stopped kernels, while the values may be
        valid), matched exactly by the save gate."""
        return list(self.credentials.registry.all_values()) if self.credentials else []

    def _checkpoint_tick(self) -> None:
        if self.ledger is not None:
            self.ledger.checkpoint_if_due()

    def initialize_handlers(self) -> None:
        web_app = self._server.web_app
        services = self.services
        setup_route_handlers(web_app, services)
        web_app.add_handlers(
            ".*$",
            job_routes(
                web_app.settings["base_url"],
                services.jobs,
                max_payload_bytes=services.settings.job_max_payload_bytes,
            ),
        )
        # Same route as the server's contents API, registered by an extension so it is
        # matched first: error reporting differs (the gate itself wraps the manager), and
        # what GET reads is masked.
        base_url = web_app.settings["base_url"]
        masking = Masking(services.credentials, services.exposures)
        web_app.add_handlers(".*$", masked_contents_routes(contents_routes(base_url), masking))
        # Files, downloads, nbconvert and terminals: injected values masked on the way out.
        web_app.add_handlers(".*$", file_routes(web_app, self._server, masking))
        check_routes(web_app, self._server)

    async def stop_extension(self) -> None:
        timer = getattr(self, "_checkpoint_timer", None)
        if timer is not None:
            timer.stop()
        for name in ("_approvals_timer", "_records_timer"):
            timer = getattr(self, name, None)
            if timer is not None:
                timer.stop()
        if self.contents_gate is not None:
            self.contents_gate.stop()
        if self.jobs is not None:
            self.jobs.close()
        if self.credentials is not None:
            await self.credentials.revoke_all("server stopped")
        if self.kernel_output is not None:
            self.kernel_output.close_all()
        if self.ledger is not None:
            self.ledger.checkpoint_if_due()
            self.ledger.close()
            self.ledger = None
