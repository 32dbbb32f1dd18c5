"""Read the distributions a set of imports needs from one Python environment.

Run inside the kernel's interpreter (``python _envprobe.py`` with a JSON request on
stdin, a JSON answer on stdout), or imported in-process when the kernel's interpreter
is this one. Uses only the standard library and ``packaging`` (every environment that
has pip has it), never jupyter_qsecure: the kernel's environment is read as it is.

Request: ``{"modules": [top-level module names], "roots": {module: distribution},
"partial": {distribution: [requirement names to follow]}}``. ``roots`` names the
distribution of modules that ``packages_distributions()`` may miss (editable installs);
``partial`` limits which requirements of a distribution are followed (jupyter-qsecure's
runtime needs only part of what the whole package requires).

Answer: ``{"python": "3.11.7", "distributions": {canonical name: version},
"roots": {module: distribution}, "unmapped": [modules no distribution provides],
"missing": [[distribution, required by]], "excluded": [requirements not followed],
"editable": [distributions installed from a local path]}``.
"""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from typing import Any


def probe(request: dict[str, Any]) -> dict[str, Any]:
    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    stdlib = set(getattr(sys, "stdlib_module_names", ())) | set(sys.builtin_module_names)
    lookup = _Lookup()
    roots: dict[str, str] = {}
    unmapped: list[str] = []
    wanted: list[tuple[str, frozenset[str]]] = []
    fixed = {k: v for k, v in dict(request.get("roots") or {}).items()}
    for module in sorted(set(request.get("modules") or ())):
        if module in stdlib or module == "__future__":
            continue
        dists = [fixed[module]] if module in fixed else lookup.providers(module)
        if not dists:
            unmapped.append(module)
            continue
        roots[module] = dists[0]
        wanted.extend((d, frozenset()) for d in dists)
    partial = {
        canonicalize_name(k): {canonicalize_name(n) for n in v}
        for k, v in dict(request.get("partial") or {}).items()
    }
    environment = default_environment()
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    missing: list[list[str]] = []
    excluded: set[str] = set()
    editable: set[str] = set()
    queue = [(d, extras, "") for d, extras in wanted]
    while queue:
        name, extras, parent = queue.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append([name, parent])
            continue
        meta = dist.metadata  # parsed once: each access of .metadata parses again
        canonical = canonicalize_name(meta["Name"] or name)
        found[canonical] = meta["Version"]
        direct = dist.read_text("direct_url.json")
        if direct and ('"editable": true' in direct or '"file://' in direct):
            editable.add(canonical)
        follow = partial.get(canonical)
        for text in meta.get_all("Requires-Dist") or ():
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            applies = False
            for extra in extras or {""}:
                env: dict[str, Any] = {**environment, "extra": extra}
                if req.marker is None or req.marker.evaluate(env):
                    applies = True
                    break
            if not applies:
                continue
            if follow is not None and canonicalize_name(req.name) not in follow:
                excluded.add(canonicalize_name(req.name))
                continue
            queue.append((req.name, frozenset(req.extras), canonical))
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "distributions": dict(sorted(found.items())),
        "roots": roots,
        "unmapped": unmapped,
        "missing": sorted(missing),
        "excluded": sorted(excluded - set(found)),
        "editable": sorted(editable),
    }


class _Lookup:
    """Which distributions provide a top-level module.

    ``packages_distributions()`` parses every distribution's metadata and RECORD (a
    quarter of a second in a big environment, on every promotion). Most modules are
    found faster: a distribution whose ``top_level.txt`` lists the module, or whose name
    is the module's and whose RECORD has it. Only modules found neither way fall back to
    the full ``packages_distributions()``.
    """

    def __init__(self) -> None:
        from packaging.utils import canonicalize_name

        self._canonical = canonicalize_name
        self._dists = list(metadata.distributions())
        self._top: dict[str, list[Any]] = {}
        self._by_name: dict[str, list[Any]] = {}
        for dist in self._dists:
            for top in (dist.read_text("top_level.txt") or "").split():
                self._top.setdefault(top, []).append(dist)
            folder = getattr(dist, "_path", None)
            stem = getattr(folder, "name", "") if folder is not None else ""
            if stem.endswith((".dist-info", ".egg-info")):
                self._by_name.setdefault(canonicalize_name(stem.split("-")[0]), []).append(dist)
        self._full: Any = None

    def _name(self, dist: Any) -> str:
        return str(self._canonical(dist.metadata["Name"]))

    def providers(self, module: str) -> list[str]:
        listed = self._top.get(module)
        if listed:
            return sorted({self._name(d) for d in listed})
        for dist in self._by_name.get(self._canonical(module), []):
            for path in dist.files or ():
                parts = path.parts
                if not parts:
                    continue
                head = parts[0]
                if head == module or head.split(".")[0] == module and len(parts) == 1:
                    return [self._name(dist)]
        if self._full is None:
            self._full = metadata.packages_distributions()
        return sorted({str(self._canonical(n)) for n in self._full.get(module, ())})


if __name__ == "__main__":
    json.dump(probe(json.load(sys.stdin)), sys.stdout)
