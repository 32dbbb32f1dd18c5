"""Exact pins for a promoted script, read from the kernel's environment.

The distributions a script needs are those providing the modules it imports
(``importlib.metadata.packages_distributions``) and, recursively, what they require
(markers evaluated for the kernel's interpreter), each at the version installed in the
environment the notebook ran in: the kernelspec's interpreter (``argv[0]`` of the
notebook's kernelspec), or ``python`` when one is given explicitly.

jupyter-qsecure itself is pinned, but only the part of its requirements the runtime
imports (:data:`RUNTIME_REQUIREMENTS`) is followed: the server, kernel and UI stack
(Jupyter Server, ipykernel and so IPython, JupyterLab, Dask) are left out, so a promoted
script's environment holds no IPython. Those left-out names are passed to the resolver as
exclusions (:attr:`Pins.excluded`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PromotionError

__all__ = ["RUNTIME_REQUIREMENTS", "Pins", "PinsError", "kernel_python", "resolve_pins"]

#: What ``jupyter_qsecure.runtime`` imports (its requirements followed for the pins).
RUNTIME_REQUIREMENTS = (
    "cryptography",
    "hvac",
    "jupyter-core",
    "psycopg",
    "pydantic",
    "qiskit",
    "qiskit-aer",
    "qiskit-qasm3-import",
    "rfc8785",
    "tomli",
    "traitlets",
)
OWN_DISTRIBUTION = "jupyter-qsecure"
#: Requirements of jupyter-qsecure that only review and promotion need, never a promoted
#: script (excluded even when the installed metadata predates them).
PROMOTION_ONLY = ("nbdime", "uv")


class PinsError(PromotionError):
    """The kernel's environment cannot give exact pins for the script."""


@dataclass
class Pins:
    python: str
    executable: str
    distributions: dict[str, str]  # canonical name -> version
    excluded: list[str] = field(default_factory=list)
    editable: list[str] = field(default_factory=list)

    def requirements(self) -> list[str]:
        return [f"{name}=={version}" for name, version in sorted(self.distributions.items())]


def kernel_python(kernelspec_name: str, explicit: str | None = None) -> str:
    """The interpreter of the notebook's kernel (``explicit`` wins)."""
    if explicit:
        return _check_python(explicit, "--python")
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        spec = KernelSpecManager().get_kernel_spec(kernelspec_name)
    except NoSuchKernel:
        raise PinsError(
            f"the notebook's kernel {kernelspec_name!r} is not installed here, so its "
            "environment cannot be read",
            hint="install the kernel (`jupyter kernelspec list` shows those installed), or "
            "name its interpreter with --python PATH",
        ) from None
    argv = list(spec.argv or [])
    if not argv:
        raise PinsError(f"kernelspec {kernelspec_name!r} has no argv", hint="fix the kernelspec")
    program = argv[0]
    # as jupyter_client starts kernels: a bare "python" is the launching interpreter
    bare = {
        "python",
        f"python{sys.version_info[0]}",
        f"python{sys.version_info[0]}.{sys.version_info[1]}",
    }
    if program in bare:
        program = sys.executable
    elif not os.path.isabs(program):
        program = shutil.which(program) or program
    return _check_python(program, f"kernelspec {kernelspec_name!r}")


def _check_python(path: str, where: str) -> str:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise PinsError(
            f"{where}: {path} is not an executable Python interpreter",
            hint="name the kernel's interpreter with --python PATH",
        )
    return path


def _same_interpreter(python: str) -> bool:
    try:
        return os.path.samefile(python, sys.executable)
    except OSError:
        return False


def resolve_pins(modules: set[str], python: str) -> Pins:
    """Pins for ``modules`` (top-level names) plus jupyter-qsecure's runtime, read from
    the environment of ``python``."""
    request: dict[str, Any] = {
        "modules": sorted(modules | {"jupyter_qsecure"}),
        "roots": {"jupyter_qsecure": OWN_DISTRIBUTION},
        "partial": {OWN_DISTRIBUTION: list(RUNTIME_REQUIREMENTS)},
    }
    if _same_interpreter(python):
        from ._envprobe import probe

        answer = probe(request)
    else:
        answer = _probe_in(python, request)
    if answer["unmapped"]:
        names = ", ".join(answer["unmapped"])
        raise PinsError(
            f"the notebook imports {names}, which no distribution installed in the kernel's "
            f"environment ({python}) provides",
            hint="install it as a package in that environment (a module beside the notebook "
            "is not part of the promotion), or remove the import",
        )
    if answer["missing"]:
        name, parent = answer["missing"][0]
        raise PinsError(
            f"{parent or 'the notebook'} requires {name}, which is not installed in the "
            f"kernel's environment ({python})",
            hint="repair that environment (`pip check` lists what is missing)",
        )
    return Pins(
        python=str(answer["python"]),
        executable=python,
        distributions=dict(answer["distributions"]),
        excluded=sorted(
            set(answer["excluded"])
            | {n for n in PROMOTION_ONLY if n not in answer["distributions"]}
        ),
        editable=list(answer["editable"]),
    )


def _probe_in(python: str, request: dict[str, Any]) -> dict[str, Any]:
    script = Path(__file__).with_name("_envprobe.py")
    try:
        done = subprocess.run(
            [python, str(script)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PinsError(
            f"cannot read the kernel's environment with {python} ({type(exc).__name__})",
            hint="check the interpreter, or name another with --python PATH",
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        raise PinsError(
            f"reading the kernel's environment with {python} failed: {last}",
            hint="the interpreter needs Python 3.10 or newer and the 'packaging' package",
        )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer
