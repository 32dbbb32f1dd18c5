"""``jupyter qsecure promote``: an approved notebook becomes a pinned, signed script.

:func:`promote` checks, in this order, and refuses (naming the reason and, where there
is one, the cell, numbered from 1 as JupyterLab shows them) before anything is written:

1. the notebook is valid nbformat 4 with a Python kernelspec (:mod:`.digest`);
2. enough valid approvals of its current digest for the environment
   (:func:`jupyter_qsecure.promote.review.valid_approvals`); a notebook changed since
   its approval names the changed cells;
3. the scanner (the save gate's, :func:`jupyter_qsecure.scan.default_scanner`) finds no
   secret anywhere in the notebook: sources, outputs, metadata, attachments;
4. every cell translates faithfully to plain Python (:mod:`.translate`);
5. every import maps to a distribution of the kernel's environment (:mod:`.pins`),
   and a resolver locks exactly those versions with hashes (:mod:`.lock`).

Then it writes, into a new (or empty) ``DIR``, all at once (a staging folder renamed
into place): ``NAME.py`` (with a PEP 723 block pinning every distribution),
``requirements.lock``, ``approvals.json`` (the approval envelopes that count) and
``promotion.intoto.json`` (:mod:`.provenance`, signed), and records ``promotion.created``
in the ledger before the folder appears.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from .._version import __version__
from ..ledger.kinds import Body, register_kind
from .digest import canonical_document, document_digest, load_notebook
from .errors import PromotionError
from .translate import RUNTIME_NAME, Translation, translate_cells

if TYPE_CHECKING:
    from ..config import QSecure
    from ..signing.signers import Signer

__all__ = [
    "APPROVALS_NAME",
    "ENVELOPE_NAME",
    "NotApproved",
    "PromotionRefused",
    "PromotionResult",
    "SecretFound",
    "Prepared",
    "prepare_promotion",
    "promote",
    "promotion_signer",
    "record_promotion",
    "render_script",
]

ENVELOPE_NAME = "promotion.intoto.json"
APPROVALS_NAME = "approvals.json"
PROMOTION_TRANSIT_KEY = "qsecure-promotions"


class PromotionRefused(PromotionError):
    """The notebook may not be promoted as it is (exit status 1)."""

    exit_code = 1


class NotApproved(PromotionRefused):
    """Not enough valid approvals of the notebook's current digest. ``cells``: the cells
    changed or added since the latest approval (1-based, as JupyterLab shows them)."""

    cells: tuple[int, ...] = ()


class SecretFound(PromotionRefused):
    """The scanner found a secret in the notebook. ``cell`` (1-based, None for notebook
    metadata) and ``line`` of the first finding."""

    cell: int | None = None
    line: int | None = None


class NotPython(PromotionRefused):
    """The notebook's kernel is not a Python kernel."""


class PromotionCreatedBody(Body):
    """A promotion: what was promoted, by whom, and the digests of what was written."""

    notebook: str
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    environment: str
    out_dir: str
    script: str
    files: dict[str, str]  # name -> sha256
    statement_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    approvals: list[str]  # envelope digests
    approvers: list[str]
    promoter: str
    keyid: str


register_kind("promotion.created", PromotionCreatedBody, replace=True)


@dataclass
class PromotionResult:
    out_dir: Path
    script: Path
    lock: Path
    envelope: Path
    statement: dict[str, Any]
    ledger_index: int | None
    timings: dict[str, float] = field(default_factory=dict)


def _utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def promotion_signer(settings: QSecure, client: Any = None) -> Signer:
    """OpenBao transit key ``qsecure-promotions`` when OpenBao is configured (created if
    missing), else the local Ed25519 key ``<data_dir>/keys/promotion-ed25519.pem``."""
    if settings.vault_addr:
        from ..signing.transit import TransitSigner

        if client is None:
            from ..vault.client import client_from_settings

            client = client_from_settings(settings)
        signer = TransitSigner(
            client, mount=settings.ledger_transit_mount, key_name=PROMOTION_TRANSIT_KEY
        )
        signer.ensure_key()
        return signer
    from ..signing.signers import Ed25519FileSigner

    return Ed25519FileSigner(settings.data_path / "keys" / "promotion-ed25519.pem")


# ---- the checks -------------------------------------------------------------------------------
def _check_python(document: dict[str, Any], path: Path) -> None:
    language = str(document["kernelspec"]["language"]).lower()
    if language != "python":
        raise NotPython(
            f"{path} runs on the {document['kernelspec']['name']!r} kernel ({language}); only "
            "Python notebooks can be promoted",
            hint="promote notebooks that run on a Python kernel, e.g. 'Python 3 (qsecure)'",
        )


def _check_approvals(
    path: Path, environment: str, digest: str, settings: QSecure, keys_files: Sequence[str]
) -> Any:
    from .review import valid_approvals

    check = valid_approvals(path, environment, settings=settings, keys_files=keys_files)
    if check.digest != digest:
        raise PromotionRefused(
            f"{path} changed while it was being promoted", hint="promote it again"
        )
    if check.satisfied:
        return check
    changes = check.changes()
    if changes:
        parts = []
        for change in changes:
            if change.kind == "removed":
                parts.append(f"cell {change.old + 1 if change.old is not None else '?'} removed")
            else:
                parts.append(f"cell {(change.new or 0) + 1} {change.kind}")
        earlier = check.latest_earlier()
        who = f" by {earlier.reviewer.name}" if earlier is not None else ""
        refused = NotApproved(
            f"{path} changed since its approval{who}: {', '.join(parts)}; no valid approval "
            f"matches its current digest ({digest[:12]}) in {environment}",
            hint="review the change (`jupyter qsecure review status --diff`) and have it "
            "approved again (`jupyter qsecure review approve`)",
        )
        refused.cells = tuple(c.new + 1 for c in changes if c.new is not None)
        raise refused
    if check.kernelspec_changed():
        raise NotApproved(
            f"{path}: its kernelspec changed since its approval; no valid approval matches "
            f"its current digest in {environment}",
            hint="have it approved again (`jupyter qsecure review approve`)",
        )
    reasons = check.reasons() or [f"no valid approval of its current digest in {environment}"]
    raise NotApproved(
        f"{path} is not approved for {environment}: {'; '.join(reasons)}",
        hint="have it approved (`jupyter qsecure review approve "
        f"{path.name}`); `jupyter qsecure review status` shows what counts",
    )


def _check_secrets(nb: dict[str, Any], path: Path) -> None:
    from ..scan import default_scanner

    result = default_scanner().scan_notebook(nb, path=str(path))
    if result.clean:
        return
    first = result.findings[0]
    if first.cell is not None:
        where = f"cell {first.cell + 1}"
    else:
        where = "the notebook's metadata"
    detail: str = first.where or ""
    if first.output is not None:
        detail += f"[{first.output}]"
    if first.mime:
        detail += f" {first.mime}"
    more = len(result.findings) - 1
    refused = SecretFound(
        f"{path}: {where} ({detail.strip()}, line {first.line}) holds a secret "
        f"({first.type})" + (f", and {more} more finding(s)" if more else ""),
        hint="remove it (clear the output, or read it with secrets.get) and rotate it, save, "
        "have the notebook approved again, then promote it; `jupyter qsecure scan` lists "
        "every finding",
    )
    refused.cell = first.cell + 1 if first.cell is not None else None
    refused.line = first.line
    raise refused


# ---- the script -----------------------------------------------------------------------------
def render_script(
    *,
    translation: Translation,
    notebook_name: str,
    digest: str,
    environment: str,
    python: str,
    pins: dict[str, str],
) -> str:
    """The promoted script: PEP 723 block, provenance comment, runtime binding, cells."""
    major, minor = python.split(".")[:2]
    deps = "".join(f'#     "{name}=={version}",\n' for name, version in sorted(pins.items()))
    header = (
        "#!/usr/bin/env python3\n"
        "# /// script\n"
        f'# requires-python = "=={major}.{minor}.*"\n'
        "# dependencies = [\n"
        f"{deps}"
        "# ]\n"
        "# ///\n"
        f"# Promoted by jupyter-qsecure {__version__} from {notebook_name}\n"
        f"# (notebook digest sha256:{digest}) for the {environment} environment.\n"
        "# Install from requirements.lock (it has the hashes): uv pip sync --require-hashes\n"
        "# requirements.lock. Every byte here is signed in promotion.intoto.json; check it\n"
        "# with `jupyter qsecure verify-promotion DIR` before running it. Do not edit.\n"
        "\n"
        f"from jupyter_qsecure import runtime as {RUNTIME_NAME}\n"
        "\n"
        f"{RUNTIME_NAME}.promoted(\n"
        f"    notebook={notebook_name!r}, digest={digest!r}, environment={environment!r}\n"
        ")\n"
        "\n"
    )
    return header + translation.body


# ---- promotion ------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A promotion built and signed in memory, not yet recorded or written."""

    files: dict[str, bytes]  # file name -> content, the envelope last
    statement: dict[str, Any]
    record: dict[str, Any]  # the promotion.created body, but out_dir
    promoter: str
    script_name: str
    timings: dict[str, float]


def prepare_promotion(
    notebook: str | os.PathLike[str],
    *,
    environment: str | None = None,
    settings: QSecure | None = None,
    python: str | None = None,
    find_links: Sequence[str] = (),
    keys_files: Sequence[str] = (),
    expected_digest: str | None = None,
    promoter_name: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Prepared:
    """Every check, the script, the lock and the signed provenance, in memory.

    ``expected_digest``: refuse unless the notebook on disk has this digest (the
    nbconvert exporter passes the digest of the notebook it was given).
    ``promoter_name``: the person promoting, when another program acts for them (the
    Jupyter server passes its user's name; its OpenBao login stays in the provenance's
    ``source``, ``method`` and ``accessor``); default: the login's name.
    """
    from . import lock as locking
    from .pins import kernel_python, resolve_pins

    if settings is None:
        from ..config import load_settings

        settings = load_settings()
    env = environment or str(settings.environment)
    path = Path(notebook)
    timings: dict[str, float] = {}
    started_on = _utc()
    began = mark = clock()

    def lap(name: str) -> None:
        nonlocal mark
        now = clock()
        timings[name] = now - mark
        mark = now

    nb = load_notebook(path)
    document = canonical_document(nb, path=path)
    _check_python(document, path)
    digest = document_digest(document)
    if expected_digest is not None and expected_digest != digest:
        raise PromotionRefused(
            f"the notebook given differs from {path} on disk (what was approved)",
            hint="save the notebook, then export it again",
        )
    lap("digest")
    check = _check_approvals(path, env, digest, settings, keys_files)
    lap("approvals")
    _check_secrets(nb, path)
    lap("scan")
    translation = translate_cells(document["cells"])
    lap("export")
    interpreter = kernel_python(document["kernelspec"]["name"], python)
    pins = resolve_pins(translation.imports, interpreter)
    script_name = path.stem + ".py"
    script = render_script(
        translation=translation,
        notebook_name=path.name,
        digest=digest,
        environment=env,
        python=pins.python,
        pins=pins.distributions,
    )
    lap("pin")
    index = locking.index_settings().with_find_links(find_links)
    uv = locking.uv_binary()
    with tempfile.TemporaryDirectory(prefix="qsecure-lock-") as work:
        lock_text = locking.lock_pins(pins, Path(work), index=index, uv=uv)
    lap("lock")

    from ..jobs.manifest import envelope_digest, sign_envelope, statement_body_digest
    from ..jobs.policy import Policy
    from ..jobs.wiring import trust_signer
    from ..runtime.identity import login
    from .provenance import build_statement
    from .review import approvals_path, read_approvals

    promoter, client = login(settings)
    if promoter_name is not None:
        promoter = dataclasses.replace(promoter, user=promoter_name)
    envelopes = read_approvals(approvals_path(path))
    counted = [r for r in check.records if r.counted and r.approval is not None]
    approval_envelopes = [_as_json(envelopes[r.position - 1]) for r in counted]
    approvals = [
        {
            "digest": {"sha256": envelope_digest(e)},
            "approver": r.approval.reviewer.name,
            "source": r.approval.reviewer.source,
            "keyid": r.approval.keyid,
        }
        for r, e in zip(counted, approval_envelopes, strict=True)
    ]
    files = {
        script_name: script.encode("utf-8"),
        locking.LOCK_NAME: lock_text.encode("utf-8"),
        APPROVALS_NAME: (json.dumps(approval_envelopes, indent=2, sort_keys=True) + "\n").encode(
            "utf-8"
        ),
    }
    review_policy = check.policy
    job_policy = Policy.load(settings.policy_file or None, env)
    tools = {
        "jupyter-qsecure": __version__,
        "uv": locking.uv_version(uv),
        "python": platform.python_version(),
        "ipython": _version_of("ipython"),
    }
    statement = build_statement(
        files=files,
        notebook={
            "path": str(path.resolve()),
            "name": path.name,
            "digest": {"sha256": digest},
            "kernelspec": dict(document["kernelspec"]),
        },
        environment=env,
        approvals=approvals,
        policy={
            "sha256": job_policy.sha256,
            "version": job_policy.version,
            "approvals_required": review_policy.approvals_required,
            "allow_self_approval": review_policy.allow_self_approval,
        },
        tools=tools,
        pins=pins.distributions,
        internal={
            "python": pins.python,
            "interpreter": pins.executable,
            "excluded": list(pins.excluded),
            "skipped_cells": list(translation.skipped),
        },
        promoter=promoter.to_json(),
        invocation_id=uuid.uuid4().hex,
        started_on=started_on,
        finished_on=_utc(),
    )
    signer = promotion_signer(settings, client)
    trust_signer(settings, signer)
    envelope = sign_envelope(statement, signer)
    files[ENVELOPE_NAME] = (
        json.dumps(envelope.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    ).encode("utf-8")
    lap("sign")
    timings["total"] = clock() - began
    return Prepared(
        files=files,
        statement=statement,
        record={
            "notebook": str(path.resolve()),
            "digest": digest,
            "environment": env,
            "script": script_name,
            "files": {s["name"]: s["digest"]["sha256"] for s in statement["subject"]},
            "statement_sha256": statement_body_digest(statement),
            "approvals": [a["digest"]["sha256"] for a in approvals],
            "approvers": [a["approver"] for a in approvals],
            "promoter": promoter.user,
            "keyid": envelope.signatures[0].keyid,
        },
        promoter=promoter.user,
        script_name=script_name,
        timings=timings,
    )


def _as_json(envelope: Any) -> Any:
    return envelope.model_dump(mode="json") if hasattr(envelope, "model_dump") else envelope


def record_promotion(
    prepared: Prepared, out_dir: str, *, settings: QSecure, ledger: Any = None
) -> int | None:
    """Append the ``promotion.created`` entry (fail closed: no record, no promotion)."""
    return _record(ledger, settings, {**prepared.record, "out_dir": out_dir}, prepared.promoter)


def promote(
    notebook: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    environment: str | None = None,
    settings: QSecure | None = None,
    python: str | None = None,
    find_links: Sequence[str] = (),
    keys_files: Sequence[str] = (),
    ledger: Any = None,
    promoter_name: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> PromotionResult:
    """Promote ``notebook`` into ``out_dir`` (see the module docstring;
    ``promoter_name`` as :func:`prepare_promotion`)."""
    if settings is None:
        from ..config import load_settings

        settings = load_settings()
    out = Path(out_dir)
    _check_out_dir(out)
    prepared = prepare_promotion(
        notebook,
        environment=environment,
        settings=settings,
        python=python,
        find_links=find_links,
        keys_files=keys_files,
        promoter_name=promoter_name,
        clock=clock,
    )
    began = clock()
    staging = _stage(out, prepared.files)
    try:
        _check_out_dir(out)  # another promotion may have written it meanwhile
        index_of = record_promotion(prepared, str(out.resolve()), settings=settings, ledger=ledger)
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    timings = dict(prepared.timings)
    timings["record"] = clock() - began
    timings["total"] += timings["record"]
    return PromotionResult(
        out_dir=out,
        script=out / prepared.script_name,
        lock=out / "requirements.lock",
        envelope=out / ENVELOPE_NAME,
        statement=prepared.statement,
        ledger_index=index_of,
        timings=timings,
    )


def _version_of(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def _check_out_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PromotionRefused(
            f"{out} exists and is not an empty folder: a promotion writes a new folder",
            hint="choose a new output folder (-o DIR), or remove the old promotion first",
        )


def _stage(out: Path, files: dict[str, bytes]) -> Path:
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.promoting-", dir=parent))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _move_into_place(staging: Path, out: Path) -> None:
    if out.exists():
        out.rmdir()
    os.replace(staging, out)
    os.chmod(out, 0o755)  # noqa: S103 - a promotion is for reading (mkdtemp made it 0700)


def _record(ledger: Any, settings: QSecure, body: dict[str, Any], actor: str) -> int | None:
    """Append ``promotion.created`` (fail closed: no record, no promotion)."""
    own = ledger is None
    if own:
        from ..ledger import Ledger

        ledger = Ledger.open(settings=settings)
    try:
        entry = ledger.append(
            "promotion.created", body, actor=f"user:{actor}", correlation_id=body["digest"]
        )
        return int(entry.index)
    finally:
        if own:
            ledger.close()
