"""An organisation's own token formats and allowlists: a gitleaks TOML or kingfisher YAML file.

``c.QSecure.scan_rules = "/etc/acme/secrets.toml"`` (or ``jupyter qsecure scan --rules
FILE``) adds the file's rules to every scan, beside the built-in layers.

**gitleaks format** (``.toml``; what gitleaks and betterleaks read)::

    [[rules]]
    id = "acme-api-token"
    description = "Acme API Token"        # the findings' type (the id if absent or long)
    regex = '''\\b(acme_[a-z0-9]{32})\\b'''
    secretGroup = 1                       # optional; else the first group, or the match
    entropy = 3.0                         # optional minimum Shannon entropy
    keywords = ["acme_"]                  # optional; one must be in the text
    path = '''\\.ipynb$'''                # optional; the rule only applies to such files
    [[rules.allowlists]]                  # or [rules.allowlist]: this rule only
    regexes = ['''acme_0{32}''']

    [allowlist]                           # or [[allowlists]]: every layer's findings
    paths = ['''(^|/)fixtures/''']
    regexes = ['''EXAMPLE''']
    regexTarget = "secret"                # secret (default), match (= secret here) or line
    stopwords = ["dummy"]
    condition = "OR"                      # OR (default): any criterion; AND: all given
    fingerprints = ["<64 hex digits>"]    # ours: a finding's keyed fingerprint, as reported

**kingfisher format** (``.yaml``/``.yml``: ``rules:`` with ``id``, ``name``, ``pattern``,
``min_entropy``…, see kingfisher's docs) plus the same allowlist keys under a
top-level ``allowlist:`` (or a list, ``allowlists:``).

The rule regexes are compiled by kingfisher (Rust regex syntax, as gitleaks' Go RE2);
the allowlists, entropy, keywords and path filters are applied here, because kingfisher
reads only the rules from a gitleaks file. Allowlists never hide an exact match of a
value the server injected. A bad file is a :class:`~.errors.ScanError` naming the file,
the rule and what is wrong; the scan does not run without the rules it was told to use.
"""

from __future__ import annotations

import math
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ScanError
from .models import Detection
from .providers import scan_batch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_HINT = (
    "fix the rule file (gitleaks TOML or kingfisher YAML) named in c.QSecure.scan_rules / --rules"
)
MAX_TYPE_CHARS = 60


def _error(path: str, what: str) -> ScanError:
    return ScanError(f"scan rules {path}: {what}", hint=_HINT)


def _shannon(value: str) -> float:
    if not value:
        return 0.0
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


@dataclass(frozen=True)
class Allowlist:
    """Findings this list allows (not reported): gitleaks' allowlist semantics."""

    paths: tuple[re.Pattern[str], ...] = ()
    regexes: tuple[re.Pattern[str], ...] = ()
    regex_target: Literal["secret", "match", "line"] = "secret"
    stopwords: tuple[str, ...] = ()
    fingerprints: frozenset[str] = frozenset()
    condition: Literal["OR", "AND"] = "OR"

    def allows(self, *, path: str, secret: str, line: str, hashes: Iterable[str] = ()) -> bool:
        checks: list[bool] = []
        if self.paths:
            norm = path.replace(os.sep, "/")
            checks.append(any(p.search(norm) for p in self.paths))
        if self.regexes:
            target = line if self.regex_target == "line" else secret
            checks.append(any(r.search(target) for r in self.regexes))
        if self.stopwords:
            lower = secret.lower()
            checks.append(any(w in lower for w in self.stopwords))
        if self.fingerprints:
            checks.append(any(h in self.fingerprints for h in hashes))
        if not checks:
            return False
        return all(checks) if self.condition == "AND" else any(checks)


@dataclass(frozen=True)
class OrgRule:
    """One organisation rule, by the id kingfisher reports it under."""

    id: str
    type: str
    #: What kingfisher compiles for a gitleaks rule: ``[[rules]]`` with id, regex, group.
    native: str = field(default="", repr=False)
    entropy: float = 0.0
    keywords: tuple[str, ...] = ()
    path: re.Pattern[str] | None = None
    allowlists: tuple[Allowlist, ...] = ()


def _strings(path: str, where: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _error(path, f"{where} must be a list of strings")
    return list(value)


def _regex(path: str, where: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise _error(path, f"{where}: invalid regular expression ({exc})") from None


def _allowlist(path: str, where: str, table: Any) -> Allowlist:
    if not isinstance(table, Mapping):
        raise _error(path, f"{where} must be a table of paths/regexes/stopwords/fingerprints")
    known = {
        "description",
        "paths",
        "regexes",
        "regexTarget",
        "stopwords",
        "fingerprints",
        "condition",
        "commits",
        "targetRules",
    }
    unknown = sorted(set(table) - known)
    if unknown:
        raise _error(path, f"{where} has unknown key(s) {', '.join(unknown)}")
    target = table.get("regexTarget", "secret")
    if target not in ("secret", "match", "line"):
        raise _error(path, f"{where}.regexTarget must be secret, match or line, not {target!r}")
    condition = str(table.get("condition", "OR")).upper()
    if condition not in ("OR", "AND"):
        raise _error(path, f"{where}.condition must be OR or AND, not {condition!r}")
    fingerprints = _strings(path, f"{where}.fingerprints", table.get("fingerprints"))
    for fp in fingerprints:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", fp):
            raise _error(path, f"{where}.fingerprints: {fp[:12]!r}… is not a 64-digit hex hash")
    return Allowlist(
        paths=tuple(
            _regex(path, f"{where}.paths[{i}]", p)
            for i, p in enumerate(_strings(path, f"{where}.paths", table.get("paths")))
        ),
        regexes=tuple(
            _regex(path, f"{where}.regexes[{i}]", p)
            for i, p in enumerate(_strings(path, f"{where}.regexes", table.get("regexes")))
        ),
        regex_target=target,
        stopwords=tuple(
            w.lower() for w in _strings(path, f"{where}.stopwords", table.get("stopwords"))
        ),
        fingerprints=frozenset(f.lower() for f in fingerprints),
        condition="AND" if condition == "AND" else "OR",
    )


def _allowlists(path: str, where: str, single: Any, many: Any) -> tuple[Allowlist, ...]:
    out: list[Allowlist] = []
    if single is not None:
        out.append(_allowlist(path, where + ".allowlist" if where else "allowlist", single))
    if many is not None:
        if not isinstance(many, list):
            raise _error(path, f"{where or 'top level'}: allowlists must be a list of tables")
        name = where + ".allowlists" if where else "allowlists"
        out.extend(_allowlist(path, f"{name}[{i}]", t) for i, t in enumerate(many))
    return tuple(out)


def _type_name(name: Any, rule_id: str) -> str:
    if isinstance(name, str) and name.strip() and len(name.strip()) <= MAX_TYPE_CHARS:
        return name.strip()
    return rule_id


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON string syntax is valid TOML for these characters)."""
    import json

    return json.dumps(value, ensure_ascii=False)


def _parse_toml(path: str, text: str) -> tuple[list[OrgRule], tuple[Allowlist, ...]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _error(path, f"not valid TOML ({exc})") from None
    extend = data.get("extend")
    if extend is not None and (not isinstance(extend, Mapping) or set(extend) - {"useDefault"}):
        raise _error(
            path,
            "[extend] may only say useDefault (the built-in rules always run; "
            "extending another file is not supported)",
        )
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise _error(path, "rules must be an array of tables ([[rules]])")
    rules: list[OrgRule] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        where = f"rules[{i}]"
        if not isinstance(raw, Mapping):
            raise _error(path, f"{where} is not a table")
        rid = raw.get("id")
        if not isinstance(rid, str) or not rid.strip():
            raise _error(path, f"{where} has no id")
        where = f"rule {rid!r}"
        if rid in seen:
            raise _error(path, f"{where} is defined twice")
        seen.add(rid)
        regex = raw.get("regex")
        if not isinstance(regex, str) or not regex:
            raise _error(
                path, f"{where} has no regex (rules that match only a file path are not supported)"
            )
        group = raw.get("secretGroup", 0)
        if not isinstance(group, int) or group < 0:
            raise _error(path, f"{where}: secretGroup must be a non-negative integer")
        entropy = raw.get("entropy", 0.0)
        if not isinstance(entropy, (int, float)) or entropy < 0:
            raise _error(path, f"{where}: entropy must be a non-negative number")
        rule_path = raw.get("path")
        if rule_path is not None and not isinstance(rule_path, str):
            raise _error(path, f"{where}: path must be a regular expression string")
        native = (
            "[[rules]]\n"
            f"id = {_toml_str(rid)}\n"
            f"description = {_toml_str(_type_name(raw.get('description'), rid))}\n"
            f"regex = {_toml_str(regex)}\n" + (f"secretGroup = {group}\n" if group else "")
        )
        rules.append(
            OrgRule(
                id="custom." + rid,
                native=native,
                type=_type_name(raw.get("description"), rid),
                entropy=float(entropy),
                keywords=tuple(
                    k.lower() for k in _strings(path, f"{where}.keywords", raw.get("keywords"))
                ),
                path=_regex(path, f"{where}.path", rule_path) if rule_path else None,
                allowlists=_allowlists(path, where, raw.get("allowlist"), raw.get("allowlists")),
            )
        )
    allow = _allowlists(path, "", data.get("allowlist"), data.get("allowlists"))
    return rules, allow


def _parse_yaml(path: str, text: str) -> tuple[list[OrgRule], tuple[Allowlist, ...], str]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _error(path, f"not valid YAML ({exc})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("rules"), list):
        raise _error(path, "a kingfisher rule file needs a top-level 'rules:' list")
    rules: list[OrgRule] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["rules"]):
        if not isinstance(raw, Mapping):
            raise _error(path, f"rules[{i}] is not a mapping")
        rid, name, pattern = raw.get("id"), raw.get("name"), raw.get("pattern")
        if not isinstance(rid, str) or not rid.strip():
            raise _error(path, f"rules[{i}] has no id")
        if rid in seen:
            raise _error(path, f"rule {rid!r} is defined twice")
        seen.add(rid)
        if not isinstance(pattern, str) or not pattern.strip():
            raise _error(path, f"rule {rid!r} has no pattern")
        if not isinstance(name, str) or not name.strip():
            raise _error(path, f"rule {rid!r} has no name")
        rules.append(OrgRule(id=rid, type=_type_name(name, rid)))
    allow = _allowlists(path, "", data.get("allowlist"), data.get("allowlists"))
    # kingfisher reads only its own keys: give it the rules alone.
    rules_only = yaml.safe_dump({"rules": data["rules"]}, sort_keys=False)
    return rules, allow, rules_only


@dataclass
class OrgRules:
    """A loaded organisation rule file: kingfisher scanner for its rules, plus allowlists."""

    path: str
    rules: dict[str, OrgRule]
    allowlists: tuple[Allowlist, ...]
    _scanner: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OrgRules:
        """Read and compile a rule file (cached per path, size and modification time)."""
        name = os.path.abspath(os.fspath(path))
        try:
            stat = os.stat(name)
        except OSError as exc:
            raise ScanError(
                f"cannot read scan rules {name}: {exc.strerror or exc}", hint=_HINT
            ) from None
        key = (name, stat.st_size, stat.st_mtime_ns)
        with _cache_lock:
            hit = _cache.get(key)
        if hit is not None:
            return hit
        loaded = cls._load(name)
        with _cache_lock:
            _cache[key] = loaded
        return loaded

    @classmethod
    def _load(cls, name: str) -> OrgRules:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScanError(f"cannot read scan rules {name}: {exc}", hint=_HINT) from None
        suffix = Path(name).suffix.lower()
        if suffix == ".toml":
            rules, allow = _parse_toml(name, text)
            # kingfisher gets the rules alone: path, entropy, keywords and allowlists are
            # applied here (a path-restricted rule would never fire on unit texts there).
            native_text = "\n".join(r.native for r in rules)
        elif suffix in (".yaml", ".yml"):
            rules, allow, native_text = _parse_yaml(name, text)
        else:
            raise _error(name, "must end in .toml (gitleaks format) or .yaml/.yml (kingfisher)")
        scanner = _compile(name, native_text, rules) if rules else None
        return cls(name, {r.id: r for r in rules}, allow, scanner)

    # ------------------------------------------------------------ scanning
    def detections(self, texts: Sequence[str]) -> list[list[tuple[str, Detection]]]:
        """``(rule id, detection)`` per text for this file's rules (entropy, keywords applied).

        A secret kingfisher decoded from a base64 blob is judged (entropy, keywords) and
        fingerprinted as the decoded secret, as for the built-in rules
        (:func:`.providers.builtin_detections`).
        """
        if self._scanner is None:
            return [[] for _ in texts]
        out: list[list[tuple[str, Detection]]] = []
        for text, hits in zip(texts, scan_batch(self._scanner.scan, texts), strict=True):
            lower: str | None = None
            found: list[tuple[str, Detection]] = []
            for hit in hits:
                rule = self.rules.get(hit.rule_id)
                if rule is None:
                    continue
                secret = text[hit.start : hit.end]
                value = secret if hit.decoded is None else hit.decoded
                if rule.entropy and _shannon(value) < rule.entropy:
                    continue
                if rule.keywords:
                    lower = text.lower() if lower is None else lower
                    decoded = (hit.decoded or "").lower()
                    if not any(k in lower or k in decoded for k in rule.keywords):
                        continue
                detection = Detection(
                    rule.type, secret, hit.start, hit.end, fingerprint_of=hit.decoded
                )
                found.append((rule.id, detection))
            out.append(found)
        return out

    def rule_allows(
        self, rule_id: str, *, path: str, secret: str, line: str, hashes: Iterable[str] = ()
    ) -> bool:
        """True when the rule's own path filter or allowlists drop this detection
        (``hashes``: its keyed fingerprint, for allowlists by ``fingerprints``)."""
        rule = self.rules.get(rule_id)
        if rule is None:
            return False
        if rule.path is not None and not rule.path.search(path.replace(os.sep, "/")):
            return True
        hashes = [h.lower() for h in hashes]
        return any(
            a.allows(path=path, secret=secret, line=line, hashes=hashes) for a in rule.allowlists
        )

    def allows(self, *, path: str, secret: str, line: str, hashes: Iterable[str]) -> bool:
        """True when a file-wide allowlist allows this finding."""
        hashes = [h.lower() for h in hashes]
        return any(
            a.allows(path=path, secret=secret, line=line, hashes=hashes) for a in self.allowlists
        )


def _compile(name: str, native_text: str, rules: list[OrgRule]) -> Any:
    """A kingfisher scanner for the rules (written to a private temporary file)."""
    import tempfile

    import kingfisher_sdk

    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(suffix=Path(name).suffix, prefix="qsecure-rules-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(native_text)
        compiled = kingfisher_sdk.Rules([tmp], builtins=False, confidence="low", cache=False)
    except (RuntimeError, ValueError, OSError) as exc:
        raise _error(name, f"kingfisher cannot compile the rules: {exc}") from None
    finally:
        if tmp is not None:
            os.unlink(tmp)
    ids = {m["id"] for m in compiled.metadata()}
    missing = sorted(r.id for r in rules if r.id not in ids)
    if missing:
        raise _error(name, f"kingfisher did not load rule(s) {', '.join(missing)}")
    return kingfisher_sdk.Scanner(compiled)


_cache: dict[tuple[str, int, int], OrgRules] = {}
_cache_lock = threading.Lock()
