"""Notebook-aware secret scanner (no Jupyter Server imports).

Public API (what the save gate and the CLI call)::

    from jupyter_qsecure.scan import Scanner, redact_notebook

    scanner = Scanner()                       # share one: it owns the content-hash cache
    result = scanner.scan_notebook(nb, path="a.ipynb", exact_values={"s3cr3t…"})
    result.findings                           # list[Finding]; result.clean
    result.to_json()                          # design.md contract, never the secret
    safe = redact_notebook(nb, result, scanner=scanner)   # «secret:TYPE» placeholders
    scanner.scan_text(text, path="x.env")     # non-notebook text
    scanner.scan_paths(["dir/"], baseline=Baseline.load(".secrets.baseline"))
    ExactMatcher(values).find(text)           # injected values and their encodings
    Scanner(fingerprinter=fingerprinter_from_settings(settings, create=False))
    scanner.scan_paths(["run.log"], injected=index)   # + the fingerprint registry
"""

from .baseline import Baseline
from .engine import (
    Scanner,
    ScanResult,
    ScanStats,
    as_notebook,
    default_scanner,
    scan_notebook,
    scan_paths,
    scan_text,
)
from .errors import InvalidNotebook, ScanError
from .exact import ExactMatcher, encoded_forms
from .fingerprints import Fingerprinter, FingerprintIndex, fingerprinter_from_settings
from .models import Finding, ScanReport
from .redact import placeholder_for, redact_notebook, redact_text

__all__ = [
    "Baseline",
    "ExactMatcher",
    "Finding",
    "FingerprintIndex",
    "Fingerprinter",
    "InvalidNotebook",
    "ScanError",
    "ScanReport",
    "ScanResult",
    "ScanStats",
    "Scanner",
    "as_notebook",
    "default_scanner",
    "encoded_forms",
    "fingerprinter_from_settings",
    "placeholder_for",
    "redact_notebook",
    "redact_text",
    "scan_notebook",
    "scan_paths",
    "scan_text",
]
