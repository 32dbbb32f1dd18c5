"""Approvals of heavy runs: statements signed by an approver a kernel cannot stand in for.

A job over the policy's ``heavy_run`` thresholds waits until an approver approves it.
An approval is an in-toto Statement (predicate :data:`APPROVAL_PREDICATE_TYPE`) in a
DSSE envelope (:mod:`jupyter_qsecure.jobs.manifest`), signed by an *approver key*. Its
subject is :func:`approval_subject`, the digest of exactly what was submitted (job id,
decision id, circuit hashes, shots, seed, ...); its predicate names the approver and the
submitter. ``jupyter qsecure jobs approve JOB_ID`` writes it to the ledger as
``job.approved``; the server (:class:`ApprovalVerifier`) checks the signature, that the
key belongs to an approver of this environment, that the statement names this job, its
decision and its submitter, and that approver and submitter differ (unless the
environment's policy sets ``allow_self_approval``, which only ``[dev]`` may). It then
records ``job.released`` with both identities, or ``job.approval_refused`` with the
reason, and only a released job runs. Anything can be written to the ledger by whoever
can open it; only a statement signed by an approver key releases a job.

Approver keys, and why a kernel cannot use them:

* **OpenBao/Vault** (``vault_addr`` set): the transit key ``qsecure-approver-ENV``
  (:func:`jupyter_qsecure.vault.layout.approver_transit_key`) signs. Only tokens with
  the policy ``qsecure-approver-ENV`` may sign with it: the server's policy denies it and
  kernels' tokens have no transit access. The approver's token comes from the approver's
  own login (``BAO_TOKEN`` in their shell); the statement carries its accessor and the
  server checks, with ``lookup-accessor``, that the token has the approver policy and
  belongs to the approver the statement names.
* **Embedded default** (no OpenBao): a local Ed25519 key per approver
  (:class:`LocalApproverKey`), kept outside the data dir and encrypted with a passphrase
  only the approver knows (Argon2id, AES-256-GCM); ``jobs approve`` asks for it on the
  terminal. Kernels run as the same OS user and can read the file, but cannot use the
  key without the passphrase. The server trusts the public keys listed in
  ``job_approvers_file`` (:class:`ApproverTrust`) as they were when it started: a key
  added later (by an operator, or by code in a kernel, which can write the user's
  files) is trusted only after a restart, which an operator does.

Deliberately not supported: approvals by a kernel, in any form (``jobs approve`` refuses
to run inside one, :func:`kernel_context`), and approvals of another environment's jobs
(the key, the statement and the server's environment must agree).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import QSecureError
from ..ledger.kinds import OpenBody, register_kind
from ..signing.canonical import canonical_json
from ..signing.signers import (
    Ed25519KeySigner,
    KeyRing,
    PublicKeyRecord,
    Signer,
)
from .manifest import (
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    Envelope,
    EnvelopeSignature,
    ManifestError,
    sign_envelope,
    verify_envelope_keys,
)

__all__ = [
    "APPROVAL_PREDICATE_TYPE",
    "ApprovalError",
    "ApprovalRefused",
    "ApprovalVerifier",
    "ApproverRef",
    "ApproverTrust",
    "LocalApproverKey",
    "TrustedApprover",
    "Verified",
    "approval_subject",
    "build_approval",
    "kernel_context",
]

APPROVAL_PREDICATE_TYPE = "https://jupyter-qsecure.dev/approval/v1"
ENVIRONMENTS = ("dev", "test", "prod")
#: Approver names: what the ledger and messages show. No spaces, no control characters.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
MIN_PASSPHRASE_CHARS = 12
#: Argon2id cost of unlocking a local approver key (RFC 9106's second recommended
#: option: 64 MiB, 3 passes): a fraction of a second for the approver, and as much
#: for every guess of someone who copied the key file.
KDF_MEMORY_KIB = 64 * 1024
KDF_ITERATIONS = 3
KDF_LANES = 4

for _kind in ("job.released", "job.approval_refused"):
    register_kind(_kind, OpenBody, replace=True)


class ApprovalError(QSecureError):
    """An approval cannot be made here (usage or environment): exit status 2."""


class ApprovalRefused(QSecureError):
    """The server does not honour an approval; the message says why. Exit status 1."""

    exit_code = 1


# ---- the statement --------------------------------------------------------------------------
def approval_subject(
    job_id: str, decision_id: str, circuit_hashes: Iterable[str], request: Mapping[str, Any]
) -> str:
    """SHA-256 (hex) of what is approved: the job, its decision, its circuits and options.

    The CLI computes it from the ledger's ``job.submitted`` entry, the server from the job
    it holds; an approval of anything else (another job, other circuits) does not match.
    """
    document = {
        "job_id": job_id,
        "decision_id": decision_id,
        "circuit_hashes": list(circuit_hashes),
        "request": dict(request),
    }
    return hashlib.sha256(canonical_json(document)).hexdigest()


class ApproverRef(BaseModel):
    """Who approves: a name, where the key lives, and (OpenBao) the signing token's accessor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME.pattern)
    source: Literal["local", "openbao"]
    accessor: str | None = Field(default=None, max_length=128)


def build_approval(
    *,
    job_id: str,
    subject: str,
    decision_id: str,
    environment: str,
    approver: ApproverRef,
    submitter: str,
    note: str,
    signer: Signer,
    approved_at: datetime | None = None,
) -> dict[str, Any]:
    """The signed approval, as the body of a ``job.approved`` ledger entry."""
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"job:{job_id}", "digest": {"sha256": subject}}],
        "predicateType": APPROVAL_PREDICATE_TYPE,
        "predicate": {
            "job_id": job_id,
            "decision_id": decision_id,
            "environment": environment,
            "approver": approver.model_dump(mode="json"),
            "submitter": submitter,
            "note": note,
            "approved_at": (approved_at or datetime.now(timezone.utc))
            .astimezone(timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    }
    envelope = sign_envelope(statement, signer)
    return {
        "job_id": job_id,
        "approver": approver.name,
        "submitter": submitter,
        "note": note,
        "statement": statement,
        "signatures": [s.model_dump(mode="json") for s in envelope.signatures],
    }


# ---- local approver keys ----------------------------------------------------------------------
class _KeyFile(BaseModel):
    """A local approver key file (JSON): the Ed25519 seed, encrypted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    name: str
    algorithm: Literal["ed25519"] = "ed25519"
    public_key: str
    kdf: dict[str, Any]
    nonce: str
    ciphertext: str

    def associated_data(self) -> bytes:
        return canonical_json(
            {"v": self.v, "name": self.name, "public_key": self.public_key, "kdf": self.kdf}
        )


def _derive(passphrase: str, kdf: Mapping[str, Any]) -> bytes:
    if kdf.get("name") != "argon2id":
        raise ApprovalError(f"unsupported key derivation {kdf.get('name')!r} in the key file")
    return Argon2id(
        salt=base64.b64decode(str(kdf["salt"])),
        length=32,
        iterations=int(kdf["iterations"]),
        lanes=int(kdf["lanes"]),
        memory_cost=int(kdf["memory_kib"]),
    ).derive(passphrase.encode("utf-8"))


class LocalApproverKey(Ed25519KeySigner):
    """An approver's Ed25519 key in a passphrase-encrypted file (implements ``Signer``).

    Hand-written format, and why: PKCS#8 PEM encryption in ``cryptography`` uses PBKDF2
    with OpenSSL's default 2048 iterations (cheap to guess), and the OpenSSH format's
    bcrypt KDF needs another dependency. The file holds the seed sealed with AES-256-GCM
    under an Argon2id key from the passphrase; the name, public key and KDF parameters
    are authenticated with it, so none of them can be swapped.
    """

    def __init__(self, name: str, key: ed25519.Ed25519PrivateKey) -> None:
        super().__init__(key)
        self.name = name

    @classmethod
    def create(cls, path: Path, name: str, passphrase: str) -> LocalApproverKey:
        """A new key for approver ``name`` at ``path`` (0600, never overwriting one)."""
        check_name(name)
        if len(passphrase) < MIN_PASSPHRASE_CHARS:
            raise ApprovalError(
                f"the passphrase is shorter than {MIN_PASSPHRASE_CHARS} characters",
                hint="choose a longer one: it is all that protects the key",
            )
        key = ed25519.Ed25519PrivateKey.generate()
        approver = cls(name, key)
        kdf = {
            "name": "argon2id",
            "salt": base64.b64encode(secrets.token_bytes(16)).decode("ascii"),
            "iterations": KDF_ITERATIONS,
            "lanes": KDF_LANES,
            "memory_kib": KDF_MEMORY_KIB,
        }
        nonce = secrets.token_bytes(12)
        draft = _KeyFile(
            name=name,
            public_key=base64.b64encode(approver._public_raw).decode("ascii"),
            kdf=kdf,
            nonce=base64.b64encode(nonce).decode("ascii"),
            ciphertext="",
        )
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        sealed = AESGCM(_derive(passphrase, kdf)).encrypt(nonce, seed, draft.associated_data())
        record = draft.model_copy(update={"ciphertext": base64.b64encode(sealed).decode("ascii")})
        _write_new_private_file(Path(path), record.model_dump_json(indent=2) + "\n")
        return approver

    @classmethod
    def unlock(cls, path: Path, passphrase: str) -> LocalApproverKey:
        """The key at ``path``; :class:`ApprovalError` for a wrong passphrase or a bad file."""
        try:
            record = _KeyFile.model_validate_json(Path(path).read_bytes())
        except FileNotFoundError:
            raise ApprovalError(
                f"no approver key at {path}",
                hint="create one with `jupyter qsecure jobs approver add NAME` (outside any "
                "kernel), or name yours with --approver / --key",
            ) from None
        except (OSError, ValidationError, ValueError) as exc:
            raise ApprovalError(
                f"approver key {path} cannot be read ({type(exc).__name__})",
                hint="restore it from a backup, or create a new one and have it trusted",
            ) from None
        try:
            seed = AESGCM(_derive(passphrase, record.kdf)).decrypt(
                base64.b64decode(record.nonce),
                base64.b64decode(record.ciphertext),
                record.associated_data(),
            )
        except InvalidTag:
            raise ApprovalError(
                f"wrong passphrase for approver key {path}",
                hint="type the passphrase chosen at `jobs approver add`",
            ) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ApprovalError(
                f"approver key {path} is damaged ({type(exc).__name__})",
                hint="restore it from a backup",
            ) from None
        approver = cls(record.name, ed25519.Ed25519PrivateKey.from_private_bytes(seed))
        if base64.b64encode(approver._public_raw).decode("ascii") != record.public_key:
            raise ApprovalError(f"approver key {path} does not match its public key")
        return approver


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ApprovalError(
            f"{name[:80]!r} is not an approver name",
            hint="use 1 to 64 letters, digits and . _ @ + - (starting with a letter or digit)",
        )
    return name


def _write_new_private_file(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ApprovalError(
            f"an approver key already exists at {path}",
            hint="keep it, or move it away first (approvals it signed stay verifiable "
            "while its public key is trusted)",
        ) from None
    except OSError as exc:
        raise ApprovalError(f"cannot create approver key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


# ---- who the server trusts ----------------------------------------------------------------------
class TrustedApprover(BaseModel):
    """One local approver the server trusts: a name, environments and a public key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME.pattern)
    environments: list[Literal["dev", "test", "prod"]] = Field(min_length=1)
    key: PublicKeyRecord
    added_at: str = ""


class ApproverTrust:
    """The ``job_approvers_file``: local approvers' public keys (no secret in it)."""

    def __init__(self, approvers: Iterable[TrustedApprover] = ()) -> None:
        self.approvers = list(approvers)

    @classmethod
    def load(cls, path: Path) -> ApproverTrust:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ApprovalError(
                f"cannot read the approvers file {path} ({type(exc).__name__})",
                hint="fix or restore it; it lists approvers' public keys "
                "(`jupyter qsecure jobs approver add` writes it)",
            ) from None
        try:
            items = data["approvers"] if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise ValueError("no 'approvers' list")
            return cls(TrustedApprover.model_validate(item) for item in items)
        except (ValidationError, ValueError) as exc:
            raise ApprovalError(
                f"the approvers file {path} is invalid ({type(exc).__name__})",
                hint='expected {"approvers": [{"name", "environments", "key"}]}',
            ) from None

    def add(self, name: str, key: PublicKeyRecord, environments: Iterable[str]) -> None:
        if any(a.name == name for a in self.approvers):
            raise ApprovalError(
                f"approver {name} is already trusted",
                hint="remove the entry from the approvers file first to replace the key",
            )
        self.approvers.append(
            TrustedApprover(
                name=name,
                environments=sorted(set(environments)),  # type: ignore[arg-type]
                key=key,
                added_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        )

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        document = {"approvers": [a.model_dump(mode="json") for a in self.approvers]}
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)


# ---- verification -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verified:
    """An approval the server honours: who approved (and with which key) whose job."""

    approver: str
    source: str
    key_id: str
    submitter: str

    def to_ledger(self) -> dict[str, Any]:
        return {"name": self.approver, "source": self.source, "key_id": self.key_id}


class ApprovalVerifier:
    """Checks ``job.approved`` bodies for one environment (see the module docstring).

    ``local``: the trusted local approvers (read when the server starts). ``openbao_keys``:
    the public keys of the environment's approver transit key, and ``lookup_accessor``
    returns the token data of an accessor (None when it is not a live token), so that
    the name in a statement is the name of the token that signed it.
    """

    def __init__(
        self,
        environment: str,
        *,
        local: Iterable[TrustedApprover] = (),
        openbao_keys: Iterable[PublicKeyRecord] = (),
        lookup_accessor: Callable[[str], dict[str, Any] | None] | None = None,
        approver_policy: str = "",
        name_of: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self.environment = environment
        self._local = {
            (a.key.key_id, a.key.key_version): a for a in local if environment in a.environments
        }
        self._openbao = {(k.key_id, k.key_version) for k in openbao_keys}
        self._lookup = lookup_accessor
        self._approver_policy = approver_policy
        self._name_of = name_of
        self.keyring = KeyRing([a.key for a in self._local.values()] + list(openbao_keys))

    @property
    def empty(self) -> bool:
        return len(self.keyring) == 0

    def describe(self) -> str:
        names = sorted({a.name for a in self._local.values()})
        parts = [f"{len(names)} local approver(s)" + (f" ({', '.join(names)})" if names else "")]
        if self._openbao:
            parts.append("OpenBao approvers (transit)")
        return " and ".join(parts)

    def verify(
        self,
        body: Mapping[str, Any],
        *,
        job_id: str,
        decision_id: str,
        subject: str,
        submitter: str,
        allow_self: bool,
    ) -> Verified:
        """The approver of a valid approval of this job; :class:`ApprovalRefused` if not.

        Refusal messages hold only what the server knows (never text from the body)."""
        if self.empty:
            raise ApprovalRefused(
                f"this server trusts no approver for the {self.environment} environment",
                hint="add one (`jupyter qsecure jobs approver add NAME`, or an OpenBao token "
                f"with policy qsecure-approver-{self.environment}) and restart the server",
            )
        statement, key = self._signed_statement(body)
        predicate = statement.get("predicate") or {}
        subjects = statement.get("subject") or []
        if (
            len(subjects) != 1
            or subjects[0].get("digest", {}).get("sha256") != subject
            or predicate.get("job_id") != job_id
            or predicate.get("decision_id") != decision_id
        ):
            raise ApprovalRefused(
                "the signed approval is for another job, decision or request",
                hint="approve the job as it was submitted: `jupyter qsecure jobs approve JOB_ID`",
            )
        if predicate.get("environment") != self.environment:
            raise ApprovalRefused(f"the approval is not for the {self.environment} environment")
        try:
            approver = ApproverRef.model_validate(predicate.get("approver"))
        except ValidationError:
            raise ApprovalRefused("the approval does not name its approver") from None
        name = self._approver_name(approver, key)
        if predicate.get("submitter") != submitter:
            raise ApprovalRefused(
                f"approver {name} signed for another submitter than the job's",
                hint="approve the job as recorded: `jupyter qsecure jobs approve JOB_ID`",
            )
        if name == submitter and not allow_self:
            raise ApprovalRefused(
                f"approver {name} submitted this job: self-approval is not allowed in "
                f"{self.environment}",
                hint="another approver must approve it (only a [dev] policy may set "
                "allow_self_approval = true)",
            )
        return Verified(
            approver=name, source=approver.source, key_id=key.key_id, submitter=submitter
        )

    def _signed_statement(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], PublicKeyRecord]:
        statement = body.get("statement")
        signatures = body.get("signatures")
        try:
            if not isinstance(statement, dict) or not isinstance(signatures, list):
                raise ValueError("no statement or signatures")
            envelope = Envelope(
                payload=base64.b64encode(canonical_json(statement)).decode("ascii"),
                payloadType=PAYLOAD_TYPE,
                signatures=[EnvelopeSignature.model_validate(s) for s in signatures[:8]],
            )
        except (ValidationError, ValueError, TypeError, RecursionError):
            raise ApprovalRefused(
                "the approval is malformed (no signed statement)",
                hint="approve with `jupyter qsecure jobs approve JOB_ID`",
            ) from None
        try:
            signed, keys = verify_envelope_keys(
                envelope, self.keyring, predicate_type=APPROVAL_PREDICATE_TYPE
            )
        except ManifestError:
            raise ApprovalRefused(
                "the approval is not signed by a trusted approver key",
                hint="approvals are signed by an approver's key (`jupyter qsecure jobs "
                "approve`), which kernels cannot use",
            ) from None
        return signed, keys[0]

    def _approver_name(self, approver: ApproverRef, key: PublicKeyRecord) -> str:
        ident = (key.key_id, key.key_version)
        local = self._local.get(ident)
        if local is not None:
            if approver.source != "local" or approver.name != local.name:
                raise ApprovalRefused(
                    f"the approval names another approver than {local.name}, whose key signed it"
                )
            return local.name
        if ident not in self._openbao or approver.source != "openbao" or not approver.accessor:
            raise ApprovalRefused("the approval's key and approver do not match")
        token = self._lookup(approver.accessor) if self._lookup is not None else None
        if token is None:
            raise ApprovalRefused(
                "the approver's OpenBao token is no longer valid, or cannot be checked",
                hint="approve again with a current approver token",
            )
        name = self._name_of(token) if self._name_of is not None else ""
        if self._approver_policy not in (token.get("policies") or []) or name != approver.name:
            raise ApprovalRefused(
                "the approval names another approver than the OpenBao token that signed it"
            )
        return name


# ---- where we run -------------------------------------------------------------------------------
def kernel_context(
    environ: Mapping[str, str] | None = None, *, proc: Path = Path("/proc")
) -> str | None:
    """Why this process runs inside a Jupyter kernel, or None when it does not.

    A kernel sets ``JPY_PARENT_PID`` for everything it starts (jupyter_client does), and
    is an ``ipykernel`` process among our ancestors. This is the clear message for an
    honest mistake; what makes a kernel unable to approve is that it cannot use an
    approver key (see the module docstring).
    """
    env = os.environ if environ is None else environ
    if env.get("JPY_PARENT_PID"):
        return "JPY_PARENT_PID is set: a Jupyter kernel started this process"
    if not proc.is_dir():
        return None
    pid = os.getppid()
    for _ in range(64):
        if pid <= 1:
            return None
        try:
            cmdline = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:
            return None
        if any(b"ipykernel" in part for part in cmdline):
            return f"process {pid}, an ancestor of this one, is a Jupyter kernel (ipykernel)"
        try:
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (IndexError, ValueError):
            return None
    return None
