"""The ``QSecure`` configuration class every feature reads.

Settings come from Jupyter config files (``c.QSecure.<name> = ...`` in
``jupyter_qsecure_config.py``/``.json`` or ``jupyter_server_config.py``/``.json``
on the Jupyter config path); the environment variables named in each help text
override the files, so a deployment can pin a value without editing them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_config_path, jupyter_data_dir
from traitlets import Bool, Dict, Enum, Float, Integer, TraitError, Unicode, default, validate
from traitlets.config import Configurable
from traitlets.config.loader import Config, JSONFileConfigLoader, PyFileConfigLoader

#: Environment variables that override a trait, first one set wins.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "ledger_url": ("QSECURE_LEDGER",),
    "vault_addr": ("BAO_ADDR", "VAULT_ADDR"),
    "vault_token": ("BAO_TOKEN", "VAULT_TOKEN"),
    "vault_namespace": ("BAO_NAMESPACE", "VAULT_NAMESPACE"),
    "environment": ("QSECURE_ENVIRONMENT",),
    "policy_file": ("QSECURE_POLICY_FILE",),
    "save_mode": ("QSECURE_SAVE_MODE",),
    "data_dir": ("QSECURE_DATA_DIR",),
    "scan_rules": ("QSECURE_SCAN_RULES",),
    "approver_key_dir": ("QSECURE_APPROVER_KEY_DIR",),
}

CONFIG_FILE_STEMS = ("jupyter_qsecure_config", "jupyter_server_config")


def default_data_dir() -> Path:
    """Where jupyter-qsecure keeps its local state: ``<jupyter data dir>/qsecure``."""
    return Path(jupyter_data_dir()) / "qsecure"


class QSecure(Configurable):
    """Settings shared by the server extension, the kernel extension and the CLI."""

    data_dir = Unicode(
        help="Folder for local state: the SQLite ledger, local signing keys, the local "
        "OpenBao's storage and recovery copies. Default: <jupyter data dir>/qsecure. "
        "Env: QSECURE_DATA_DIR.",
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return str(default_data_dir())

    ledger_url = Unicode(
        "",
        help="Where the audit ledger lives: sqlite:///ABS/PATH.db or "
        "postgresql://USER@HOST:PORT/DB. Empty means a SQLite file ledger.db in data_dir. "
        "Env: QSECURE_LEDGER.",
    ).tag(config=True)

    ledger_signer = Enum(
        ["auto", "local", "transit"],
        default_value="auto",
        help="Who signs ledger checkpoints: 'transit' (a key that stays in OpenBao/Vault), "
        "'local' (an Ed25519 key file in data_dir, mode 0600), or 'auto' (transit when "
        "vault_addr is set, else local).",
    ).tag(config=True)

    ledger_signing_key_file = Unicode(
        "",
        help="Path of the local Ed25519 checkpoint-signing key (PEM, created 0600 on first "
        "use). Default: <data_dir>/keys/ledger-ed25519.pem.",
    ).tag(config=True)

    ledger_transit_mount = Unicode(
        "transit", help="Mount path of the OpenBao/Vault transit engine used for signing."
    ).tag(config=True)

    ledger_transit_key = Unicode(
        "qsecure-ledger",
        help="Name of the transit key (type ed25519) that signs ledger checkpoints; created "
        "if missing.",
    ).tag(config=True)

    ledger_pq_cosign = Bool(
        True,
        help="Also co-sign every checkpoint with ML-DSA-65 (FIPS 204) from a local key file, "
        "so archived audit evidence stays verifiable against a quantum adversary.",
    ).tag(config=True)

    ledger_keyring_file = Unicode(
        "",
        help="JSON file of trusted public keys used by `audit verify`. Every key that signs "
        "a checkpoint is added to it. Default: <data_dir>/keys/ledger-keyring.json.",
    ).tag(config=True)

    checkpoint_every_entries = Integer(
        1000,
        help="Sign a checkpoint automatically once this many entries follow the last one.",
    ).tag(config=True)

    checkpoint_every_seconds = Float(
        60.0,
        help="Sign a checkpoint automatically when the oldest unsigned entry is this old "
        "(checked on append and by the server's periodic timer).",
    ).tag(config=True)

    vault_addr = Unicode(
        "",
        help="Address of the OpenBao/Vault server, e.g. http://127.0.0.1:8200. Empty means "
        "the embedded local OpenBao (where a feature needs one) or none. "
        "Env: BAO_ADDR or VAULT_ADDR.",
    ).tag(config=True)

    vault_token = Unicode(
        "",
        help="Token the server uses with OpenBao/Vault. Prefer the environment (BAO_TOKEN "
        "or VAULT_TOKEN), vault_token_file, AppRole or JWT: values in config files are "
        "echoed by Jupyter's debug logging. The server removes BAO_TOKEN/VAULT_TOKEN from "
        "its environment at start so kernels never inherit it.",
    ).tag(config=True)

    vault_token_file = Unicode(
        "",
        help="File holding the server's OpenBao/Vault token (read at start, never logged); "
        "`jupyter qsecure vault up` writes one for the embedded OpenBao.",
    ).tag(config=True)

    vault_namespace = Unicode(
        "", help="OpenBao/Vault namespace. Env: BAO_NAMESPACE or VAULT_NAMESPACE."
    ).tag(config=True)

    vault_auth_method = Enum(
        ["token", "approle", "jwt"],
        default_value="token",
        help="How the server authenticates to OpenBao/Vault.",
    ).tag(config=True)

    vault_approle_role_id = Unicode("", help="AppRole role_id (vault_auth_method='approle').").tag(
        config=True
    )

    vault_approle_secret_id_file = Unicode(
        "", help="File holding the AppRole secret_id (read at start, never logged)."
    ).tag(config=True)

    vault_jwt_role = Unicode("", help="JWT auth role (vault_auth_method='jwt').").tag(config=True)

    vault_jwt_file = Unicode(
        "", help="File holding the JWT presented to OpenBao/Vault (e.g. from JupyterHub)."
    ).tag(config=True)

    environment = Enum(
        ["dev", "test", "prod"],
        default_value="dev",
        help="Deployment environment; selects OpenBao policies, roles, secret paths and the "
        "job policy. Env: QSECURE_ENVIRONMENT.",
    ).tag(config=True)

    policy_file = Unicode(
        "", help="Job policy file (TOML/JSON) for %qsubmit. Env: QSECURE_POLICY_FILE."
    ).tag(config=True)

    job_executor = Enum(
        ["local", "dask"],
        default_value="local",
        help="Where %qsubmit jobs run: 'local' (Aer in worker processes on this machine) or "
        "'dask' (a Dask distributed cluster at dask_scheduler).",
    ).tag(config=True)

    dask_scheduler = Unicode(
        "", help="Dask scheduler address for job_executor='dask', e.g. tcp://10.0.0.5:8786."
    ).tag(config=True)

    job_workers = Integer(2, help="Worker processes of the local job executor.").tag(config=True)

    job_aer_threads = Integer(
        0,
        help="Threads Aer may use for one job (0: as many as the machine has). Jobs whose "
        "circuits all have fewer qubits than Aer parallelises (14) run on one thread "
        "whatever this says: more threads only add OpenMP start-up and spinning there.",
    ).tag(config=True)

    job_queue_size = Integer(
        64, help="Jobs that may wait for a worker; beyond it submissions get HTTP 429."
    ).tag(config=True)

    job_queue_per_user = Integer(
        0,
        help="Jobs one user may have waiting for a worker (their share of job_queue_size); "
        "beyond it that user's submissions get HTTP 429 with Retry-After, waiting or not. "
        "Users take turns at the workers (round robin) whatever their backlog. "
        "0: half of job_queue_size (at least 1).",
    ).tag(config=True)

    job_spare_workers = Integer(
        1,
        help="Extra Aer worker processes of the local executor that run only the job of a "
        "user with nothing running while other users' jobs fill the job_workers: that "
        "user's job starts at once instead of waiting for another user's long job to end "
        "(running jobs are never stopped). Started only once a second user submits. "
        "0: none (fair order only).",
    ).tag(config=True)

    def resolved_job_queue_per_user(self) -> int:
        """``job_queue_per_user``, or half of ``job_queue_size`` (at least 1) when 0."""
        if self.job_queue_per_user > 0:
            return int(min(self.job_queue_per_user, max(1, self.job_queue_size)))
        return max(1, self.job_queue_size // 2)

    job_timeout_seconds = Float(
        300.0, help="A job running (or awaiting approval) longer than this is stopped."
    ).tag(config=True)

    job_identity_cache_seconds = Float(
        2.0,
        help="How long the job broker trusts a kernel token it has looked up in OpenBao "
        "before asking again. A token the server revokes (kernel shutdown) is forgotten at "
        "once; one revoked in OpenBao behind the server's back is refused after at most "
        "this long. 0 looks every request up.",
    ).tag(config=True)

    job_max_payload_bytes = Integer(
        8 * 1024 * 1024, help="Largest %qsubmit request body accepted (HTTP 413 beyond)."
    ).tag(config=True)

    job_parse_workers = Integer(
        2,
        help="Worker processes that parse submitted circuits (QPY, OpenQASM): the server "
        "never parses one itself. Started on first use.",
    ).tag(config=True)

    job_parse_memory_mb = Integer(
        2048,
        help="Memory (MiB of address space) a parse worker may add while parsing one "
        "submission; past it the submission gets HTTP 422 and the worker is replaced. "
        "0: no limit.",
    ).tag(config=True)

    job_parse_cpu_seconds = Integer(
        20,
        help="CPU seconds a parse worker may spend on one submission (RLIMIT_CPU); past it "
        "the worker is stopped and the submission gets HTTP 422. 0: no limit.",
    ).tag(config=True)

    jobs_transit_key = Unicode(
        "qsecure-jobs",
        help="Transit key (ed25519) that signs job manifests and results when OpenBao is "
        "configured; otherwise a local Ed25519 key in data_dir/keys signs them.",
    ).tag(config=True)

    scan_rules = Unicode(
        "",
        help="An organisation's secret-scanning rules, added to the built-in ones in the save "
        "gate and `jupyter qsecure scan`: a gitleaks-format TOML (.toml) or kingfisher YAML "
        "(.yaml) file with its own token formats and allowlists (by path, regex, stopword "
        "and fingerprint). Empty: built-in rules only. Env: QSECURE_SCAN_RULES.",
    ).tag(config=True)

    job_approvers_file = Unicode(
        "",
        help="JSON list of the local approver keys the server trusts for approvals of heavy "
        "runs (names and public keys; `jupyter qsecure jobs approver add` writes it). Read "
        "once when the server starts. Default: <data_dir>/keys/approvers.json.",
    ).tag(config=True)

    approver_key_dir = Unicode(
        "",
        help="Where `jupyter qsecure jobs approver add` keeps approvers' private keys, each "
        "encrypted with its approver's passphrase. Default: ~/.config/jupyter-qsecure/"
        "approvers (outside data_dir). Env: QSECURE_APPROVER_KEY_DIR.",
    ).tag(config=True)

    mask_fragment_min = Integer(
        12,
        help="Shortest run of an injected value that is masked on its own in kernel output "
        "(formatters truncate and wrap long values): any run of at least this many "
        "characters of a value, or of its JSON/HTML-escaped form, is replaced by its "
        "placeholder. 0 masks whole values only; otherwise at least 8.",
    ).tag(config=True)

    @validate("mask_fragment_min")
    def _valid_fragment_min(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value != 0 and value < 8:
            raise TraitError(
                f"QSecure.mask_fragment_min must be 0 (whole values only) or at least 8, "
                f"not {value}: shorter runs of a value are common text"
            )
        return value

    save_mode = Enum(
        ["block", "redact", "warn"],
        default_value="block",
        help="What the save gate does with a secret: refuse the save (block), save with the "
        "secret replaced by a placeholder (redact), or save and report (warn). "
        "Env: QSECURE_SAVE_MODE.",
    ).tag(config=True)

    allow_override = Bool(
        False,
        help="Let a user save content the save gate refused, with a written reason that is "
        "recorded in the audit ledger (JupyterLab's 'Save anyway'). Never honoured in the "
        "prod environment, whatever this says.",
    ).tag(config=True)

    def override_allowed(self) -> bool:
        """``allow_override``, except in prod (never there)."""
        return bool(self.allow_override) and self.environment != "prod"

    fingerprint_retention_days = Float(
        30.0,
        help="How long a secret's value is still recognised after it was last injected "
        "into a kernel: the save gate keeps matching (and the websocket keeps masking) a KV "
        "value this long after its kernel stopped, and the fingerprint registry in data_dir "
        "(keyed fingerprints, never values) keeps it this long for `jupyter qsecure scan` "
        "and the pre-commit hook. Leased values (database credentials, kernel tokens) are "
        "kept until their lease ends, if sooner.",
    ).tag(config=True)

    secrets = Dict(
        value_trait=Unicode(),
        default_value={},
        help="Secrets a kernel may obtain besides the ones stored by name (`jupyter "
        "qsecure secret put NAME` stores field 'value' of secret/qsecure/ENV/NAME, which "
        "needs no entry here): name -> 'kv-mount/path#field' (KV v2) or "
        "'database/creds/ROLE' (dynamic credentials). A running server applies a change "
        "at the next execution.",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._apply_environment(os.environ)

    def _apply_environment(self, environ: os._Environ[str] | dict[str, str]) -> None:
        for trait_name, variables in ENV_OVERRIDES.items():
            for variable in variables:
                value = environ.get(variable)
                if value:
                    setattr(self, trait_name, value)
                    break

    # ---- derived locations -------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    def resolved_ledger_url(self) -> str:
        """The ledger URL, defaulting to the SQLite file in ``data_dir``."""
        if self.ledger_url:
            return str(self.ledger_url)
        return f"sqlite://{(self.data_path / 'ledger.db').resolve()}"

    def resolved_signing_key_file(self) -> Path:
        if self.ledger_signing_key_file:
            return Path(self.ledger_signing_key_file).expanduser()
        return self.data_path / "keys" / "ledger-ed25519.pem"

    def resolved_pq_key_file(self) -> Path:
        return self.resolved_signing_key_file().with_name("ledger-mldsa65.key")

    def resolved_approvers_file(self) -> Path:
        if self.job_approvers_file:
            return Path(self.job_approvers_file).expanduser()
        return self.data_path / "keys" / "approvers.json"

    def resolved_approver_key_dir(self) -> Path:
        if self.approver_key_dir:
            return Path(self.approver_key_dir).expanduser()
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "jupyter-qsecure" / "approvers"

    def resolved_keyring_file(self) -> Path:
        if self.ledger_keyring_file:
            return Path(self.ledger_keyring_file).expanduser()
        return self.data_path / "keys" / "ledger-keyring.json"


def config_dirs(first: str | None = None) -> list[str]:
    """The Jupyter config path, highest precedence first (``first`` in front, as Jupyter
    Server puts its ``config_dir``)."""
    dirs = list(jupyter_config_path())
    if first and first not in dirs:
        dirs.insert(0, first)
    return dirs


def config_files(dirs: list[str]) -> list[Path]:
    """Every file :func:`load_jupyter_config` would read from ``dirs``, whether it exists
    or not (a file created later counts as a change)."""
    return [
        Path(directory) / f"{stem}{suffix}"
        for directory in dirs
        for stem in CONFIG_FILE_STEMS
        for suffix in (".json", ".py")
    ]


def load_jupyter_config(
    extra_paths: list[str] | None = None, *, dirs: list[str] | None = None
) -> Config:
    """Read ``jupyter_qsecure_config`` and ``jupyter_server_config`` files (py and json).

    ``dirs`` (highest precedence first) defaults to the Jupyter config path; a Jupyter
    server passes its own ``config_file_paths``. Earlier directories take precedence, as
    in Jupyter itself; within one directory ``jupyter_server_config`` wins over
    ``jupyter_qsecure_config``; ``extra_paths`` win over both.
    """
    merged = Config()
    paths = list(reversed(dirs if dirs is not None else jupyter_config_path()))
    paths += list(extra_paths or [])
    for directory in paths:
        for stem in CONFIG_FILE_STEMS:
            for loader_class, suffix in (
                (JSONFileConfigLoader, ".json"),
                (PyFileConfigLoader, ".py"),
            ):
                if not (Path(directory) / f"{stem}{suffix}").is_file():
                    continue
                loader = loader_class(f"{stem}{suffix}", path=directory)
                try:
                    merged.merge(loader.load_config())
                except Exception as exc:  # a broken config file must name itself
                    from .errors import ConfigError

                    raise ConfigError(
                        f"cannot read config file {Path(directory) / (stem + suffix)}: {exc}",
                        hint="fix or remove that file",
                    ) from exc
    return merged


def load_settings(config: Config | None = None) -> QSecure:
    """``QSecure`` from Jupyter config files (or ``config``), with environment overrides."""
    return QSecure(config=config if config is not None else load_jupyter_config())


#: Settings a running server applies when its config files change (the rest are read
#: once, at start: a change to them needs a restart).
LIVE_SETTINGS = ("secrets",)


class ConfigWatcher:
    """Notices when the config files a server read change, and reads them again.

    :meth:`poll` costs one ``stat`` per candidate file (four per config directory), so a
    server can call it before every execution's credential fetch. It compares what the
    *files* say now with what they said before, so settings the server got elsewhere (its
    command line, other config files) are neither lost nor mistaken for a change.
    """

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = list(dirs)
        # Per directory: its (inode, mtime) and the candidate files it holds. A file
        # created, renamed in or removed changes the directory's mtime; an edit in place
        # changes the file's. So a poll stats the directories and the files that exist,
        # not every candidate name (most directories of the config path do not exist).
        self._present: dict[str, tuple[tuple[int, int] | None, list[Path]]] = {}
        self._stamp = self._take_stamp()
        self.current = self.read()

    def _take_stamp(self) -> tuple[Any, ...]:
        stamp: list[Any] = []
        for directory in self.dirs:
            try:
                info = os.stat(directory)
            except OSError:
                stamp.append(None)
                continue
            key = (info.st_ino, info.st_mtime_ns)
            known = self._present.get(directory)
            if known is None or known[0] != key:
                files = [p for p in config_files([directory]) if p.is_file()]
                self._present[directory] = known = (key, files)
            stamp.append(key)
            for path in known[1]:
                try:
                    file_info = path.stat()
                except OSError:
                    stamp.append((str(path), None))
                else:
                    stamp.append(
                        (str(path), file_info.st_ino, file_info.st_mtime_ns, file_info.st_size)
                    )
        return tuple(stamp)

    def read(self) -> QSecure:
        """What the files say now; ConfigError naming a broken file."""
        return QSecure(config=load_jupyter_config(dirs=self.dirs))

    def poll(self) -> tuple[QSecure, QSecure] | None:
        """``(before, now)`` when a config file was created, changed or removed since the
        last call, else None. A broken file raises ConfigError (and is read again at the
        next change)."""
        stamp = self._take_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        before, now = self.current, self.read()
        self.current = now
        return before, now


#: Not compared between reads: the server takes its token out of its environment at
#: start (kernels must not inherit it), so a later read differs without any change.
_NOT_COMPARED = frozenset({"vault_token"})


def restart_needed(before: QSecure, now: QSecure) -> list[str]:
    """Settings changed between two reads of the files that a running server does not
    apply live (sorted names; values are never shown)."""
    return sorted(
        name
        for name in before.class_traits(config=True)
        if name not in LIVE_SETTINGS
        and name not in _NOT_COMPARED
        and getattr(before, name) != getattr(now, name)
    )
