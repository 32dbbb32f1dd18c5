"""Public data types of the scanner: findings and scan reports (design.md section 3).

A :class:`Finding` says *where* a secret is and *what kind* it is, plus the keyed
fingerprint of the exact secret string (HMAC-SHA-256, see
:mod:`~jupyter_qsecure.scan.fingerprints`) so two reports can be compared. It never
holds the secret, nor an unkeyed hash of it:
the secret's value and span live only in :class:`Match`, an internal object the
redaction helper needs, which is never serialised.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Where = Literal["source", "outputs", "metadata", "attachments"]


class Finding(BaseModel):
    """One secret found, in the JSON shape of design.md section 3. Never holds the secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="File the secret is in ('' for an in-memory notebook).")
    cell: int | None = Field(description="0-based cell index; null for notebook metadata.")
    cell_id: str | None = Field(default=None, description="The cell's id, when it has one.")
    where: Where | None = Field(
        description="source, outputs, metadata or attachments; null for a non-notebook file."
    )
    output: int | None = Field(default=None, description="0-based index in the cell's outputs.")
    mime: str | None = Field(default=None, description="MIME type of the output or attachment.")
    line: int = Field(ge=1, description="1-based line within that text.")
    type: str = Field(description="Detector family, e.g. 'AWS Access Key'.")
    fingerprint: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="Keyed HMAC-SHA-256 (hex) of the exact secret string.",
    )
    secret_name: str | None = Field(
        default=None,
        description="For an injected value: the name of the secret it is the value of.",
    )
    injected_on: str | None = Field(
        default=None,
        description="For a value found through the fingerprint registry: the date "
        "(YYYY-MM-DD) it was last injected into a kernel.",
    )

    @property
    def cell_number(self) -> int | None:
        """The cell's number as JupyterLab shows it (from 1); None for notebook metadata."""
        return None if self.cell is None else self.cell + 1

    def location(self) -> str:
        """Where, for people, numbered as JupyterLab numbers cells (from 1): ``cell 2, line
        3``, ``cell 2, output 1, line 3``, ``cell 2 metadata, line 1``, ``cell 2, attachment
        image/png, line 1``, ``notebook metadata, line 2``, or ``line 7`` (a plain file)."""
        if self.cell is None:
            head = "notebook metadata" if self.where == "metadata" else ""
        else:
            head = f"cell {self.cell + 1}"
            if self.where == "outputs":
                head += f", output {self.output + 1}" if self.output is not None else ", output"
            elif self.where == "metadata":
                head += " metadata"
            elif self.where == "attachments":
                head += f", attachment {self.mime}" if self.mime else ", attachment"
        return f"{head}, line {self.line}" if head else f"line {self.line}"

    def place(self, first_cell: int = 0) -> str:
        """``cell 3 outputs[1] text/plain``, cells numbered from ``first_cell``."""
        parts: list[str] = []
        if self.cell is not None:
            parts.append(f"cell {self.cell + first_cell}")
        elif self.where == "metadata":
            parts.append("notebook")
        if self.where is not None:
            where: str = self.where
            if self.output is not None:
                where += f"[{self.output}]"
            parts.append(where)
        if self.mime:
            parts.append(self.mime)
        return " ".join(parts)

    def describe(self) -> str:
        """One human-readable line, e.g. ``a.ipynb: cell 3 outputs[1] text/plain line 2``."""
        place = self.place()
        parts = [self.path or "<notebook>", *([place] if place else []), f"line {self.line}"]
        what = self.type
        if self.secret_name and self.injected_on:
            part = "part of the value" if "part" in self.type else "value"
            what += f": {part} of secret {self.secret_name} injected on {self.injected_on}"
        elif self.secret_name:
            what += f": value of secret {self.secret_name}"
        return f"{' '.join(parts)}: {what} (fingerprint {self.fingerprint[:12]}…)"


class ScanReport(BaseModel):
    """What ``scan --format json`` prints: ``{"findings": [...], "files": N, "seconds": S}``."""

    model_config = ConfigDict(extra="forbid")

    findings: list[Finding] = Field(default_factory=list)
    files: int = 0
    seconds: float = 0.0
    errors: list[str] = Field(
        default_factory=list, description="Files that could not be scanned, with the reason."
    )


@dataclass(frozen=True)
class Detection:
    """A raw hit inside one text unit (internal: holds the secret value and its span)."""

    type: str
    secret: str = field(repr=False)
    start: int
    end: int
    #: The string to fingerprint when it is not ``secret`` (an encoded injected value
    #: reports the fingerprint of the value itself, so the server can tell which leaked).
    fingerprint_of: str | None = field(default=None, repr=False)
    #: The fingerprint (hex), when the detector already knows it (the registry).
    fingerprint: str | None = field(default=None, repr=False)
    #: For injected values: the secret's name, and when it was last injected (registry).
    secret_name: str | None = None
    injected_on: str | None = None


@dataclass(frozen=True)
class Match:
    """A finding plus what redaction needs (internal; never serialised, never logged)."""

    finding: Finding
    unit_index: int
    start: int
    end: int
    secret: str = field(repr=False)

    @property
    def sha1(self) -> str:
        """detect-secrets' baseline hash (SHA-1 of the secret)."""
        return hashlib.sha1(self.secret.encode("utf-8", "surrogatepass")).hexdigest()  # noqa: S324


def finding_json(finding: Finding) -> dict[str, Any]:
    """The finding as a plain dict in the contract's field order."""
    return finding.model_dump(mode="json")
