"""Notebook cells to plain Python that runs without IPython.

Each code cell is first turned into Python by IPython's own input transformer (the one
the kernel runs: ``%magic`` becomes ``get_ipython().run_line_magic(...)``, ``!cmd``
becomes ``get_ipython().system(...)``), then every ``get_ipython()`` call is translated
or refused:

- ``%qsubmit CIRCUIT [options]`` and ``%%qsubmit [options]`` with OpenQASM in the cell
  become ``_qsecure.submit(...)`` (:mod:`jupyter_qsecure.runtime`) with the same
  circuit, shots, seed, backend, method, noise, tags, bindings and timeout;
- a few magics that only change how Jupyter shows things are dropped, with a comment:
  ``%matplotlib inline``, ``%config InlineBackend.*`` and ``%load_ext
  jupyter_qsecure.kernel`` (:data:`DROPPED`);
- anything else is refused, naming the cell (numbered from 1, as JupyterLab shows
  them) and the line: other magics (``%time``, ``%run``, ``%%bash`` ...), shell
  escapes (``!cmd``, ``x = !cmd``), help (``obj?``), ``%qsubmit --status/--cancel/
  --no-wait``, magic arguments with ``$name``/``{expr}`` expansions, direct uses of
  ``get_ipython`` and of IPython's ``display`` builtin, top-level ``await``, and
  ``secrets.token()`` (the kernel's token for the Jupyter server's job broker).

``from jupyter_qsecure import secrets`` (and the ``jupyter_qsecure.secrets`` module
forms) become the same imports from :mod:`jupyter_qsecure.runtime`: ``get``,
``names`` and ``identity`` with the script's production identity. Markdown cells
become comments; raw cells and cells tagged ``skip-promote`` are left out (a comment
says so).

Deliberately not supported: translating magics whose effect outside Jupyter is not the
same (timing, shell commands, other kernels' languages): a refusal is clearer than a
script that does something else.
"""

from __future__ import annotations

import ast
import builtins
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .digest import SKIP_PROMOTE_TAG
from .errors import PromotionError

__all__ = [
    "DROPPED",
    "RUNTIME_NAME",
    "CellRefused",
    "Translation",
    "translate_cells",
]

#: The name the script binds :mod:`jupyter_qsecure.runtime` to.
RUNTIME_NAME = "_qsecure"

#: Line magics dropped (name -> predicate on the argument text, and why).
DROPPED: dict[str, tuple[Any, str]] = {
    "matplotlib": (
        lambda args: args.strip() == "inline",
        "inline plots are how Jupyter shows figures; a script saves or shows them itself",
    ),
    "config": (
        lambda args: args.strip().startswith("InlineBackend."),
        "Jupyter's inline figure settings do nothing outside Jupyter",
    ),
    "load_ext": (
        lambda args: args.strip() in ("jupyter_qsecure.kernel", "jupyter_qsecure"),
        "the script uses jupyter_qsecure.runtime instead of the kernel extension",
    ),
}

_SECRETS_MODULE = "jupyter_qsecure.secrets"
_RUNTIME_SECRETS = "jupyter_qsecure.runtime.secrets"


class CellRefused(PromotionError):
    """A cell cannot be translated faithfully. ``cell`` is 1-based, as JupyterLab shows."""

    exit_code = 1

    def __init__(self, cell: int, line: int | None, message: str, *, hint: str) -> None:
        self.cell = cell
        self.line = line
        where = f"cell {cell}" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {message}", hint=hint)


@dataclass
class Translation:
    """The script's body (no header) and the top-level modules it imports."""

    body: str
    imports: set[str] = field(default_factory=set)
    cells: int = 0  # code cells in the script
    skipped: list[int] = field(default_factory=list)  # 1-based, tagged skip-promote


def _transformer() -> Any:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()  # type: ignore[no-untyped-call]


def translate_cells(cells: Sequence[Mapping[str, Any]]) -> Translation:
    """Translate canonical cells (``cell_type``, ``source``, ``tags``) in order."""
    transformer = _transformer()
    out = Translation(body="")
    parts: list[str] = []
    for index, cell in enumerate(cells):
        number = index + 1
        source = str(cell.get("source", ""))
        kind = cell.get("cell_type")
        if SKIP_PROMOTE_TAG in (cell.get("tags") or ()):
            out.skipped.append(number)
            parts.append(f"# %% cell {number}: tagged {SKIP_PROMOTE_TAG}, left out\n")
            continue
        if kind == "markdown":
            lines = source.splitlines() or [""]
            parts.append(
                f"# %% [markdown] cell {number}\n"
                + "".join(f"# {line}".rstrip() + "\n" for line in lines)
            )
            continue
        if kind != "code":
            parts.append(f"# %% cell {number}: {kind} cell, left out\n")
            continue
        if not source.strip():
            continue
        code, imports = _translate_code(source, number, transformer)
        out.imports |= imports
        out.cells += 1
        parts.append(f"# %% cell {number}\n{code}")
    out.body = "\n".join(parts)
    _check_names(out.body)
    return out


# ---- one code cell ---------------------------------------------------------------------------
def _translate_code(source: str, number: int, transformer: Any) -> tuple[str, set[str]]:
    try:
        code = transformer.transform_cell(source)
    except Exception as exc:  # IPython's transformer raises on some malformed input
        raise CellRefused(
            number,
            None,
            f"IPython cannot read the cell ({type(exc).__name__})",
            hint="fix the cell so that it runs in the kernel, then approve it again",
        ) from None
    tree = _parse(code, number)
    edits: list[tuple[int, int, str]] = []  # (start offset, end offset, replacement)
    offsets = _line_offsets(code)

    def span(node: Any) -> tuple[int, int]:
        start = offsets[node.lineno - 1] + _col(code, offsets, node.lineno, node.col_offset)
        end_line = node.end_lineno
        end = offsets[end_line - 1] + _col(code, offsets, end_line, node.end_col_offset)
        return start, end

    statements = {id(n.value): n for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    handled: set[int] = set()
    for node in ast.walk(tree):
        call = _ipython_call(node)
        if call is None:
            continue
        method, args = call
        handled.add(id(node.func.value.func))  # type: ignore[attr-defined]
        line = node.lineno  # type: ignore[attr-defined]
        replacement = _translate_call(method, args, number, line)
        statement = statements.get(id(node))
        if replacement is None:  # dropped
            note = _drop_note(args)
            if statement is not None:
                edits.append((*span(statement), f"pass  # dropped {note}"))
            else:
                edits.append((*span(node), "None"))
        else:
            edits.append((*span(node), replacement))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "get_ipython" and id(node) not in handled:
            raise CellRefused(
                number,
                node.lineno,
                "uses get_ipython(), which exists only inside IPython",
                hint="use plain Python, or tag the cell skip-promote if the script does "
                "not need it",
            )
        if isinstance(node, ast.Await) and not _inside_function(tree, node):
            raise CellRefused(
                number,
                node.lineno,
                "uses top-level await, which only IPython allows",
                hint="wrap it in a function and run it with asyncio.run(...)",
            )
    imports = _rewrite_imports(tree, code, span, edits, number)
    for start, end, text in sorted(edits, reverse=True):
        code = code[:start] + text + code[end:]
    _parse(code, number)  # what we wrote is Python
    return (code if code.endswith("\n") else code + "\n"), imports


def _parse(code: str, number: int) -> ast.Module:
    try:
        tree = ast.parse(code)
        compile(tree, f"<cell {number}>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        if "await" in str(exc.msg):
            message = "uses top-level await, which only IPython allows"
            hint = "wrap it in a function and run it with asyncio.run(...)"
        else:
            message = f"is not valid Python after IPython's translation ({exc.msg})"
            hint = "fix the cell (or tag it skip-promote), then approve the notebook again"
        raise CellRefused(number, exc.lineno, message, hint=hint) from None
    return tree


def _line_offsets(code: str) -> list[int]:
    offsets, total = [], 0
    for line in code.splitlines(keepends=True):
        offsets.append(total)
        total += len(line)
    offsets.append(total)
    return offsets


def _col(code: str, offsets: list[int], lineno: int, col: int) -> int:
    """ast columns count UTF-8 bytes; Python string offsets count characters."""
    line = code[offsets[lineno - 1] : offsets[lineno] if lineno < len(offsets) else len(code)]
    return len(line.encode("utf-8")[:col].decode("utf-8", "replace"))


def _inside_function(tree: ast.AST, target: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, (ast.AsyncFunctionDef, ast.FunctionDef, ast.Lambda)):
            if any(child is target for child in ast.walk(node)):
                return True
    return False


def _ipython_call(node: ast.AST) -> tuple[str, list[Any]] | None:
    """``("run_line_magic", ["name", "args"])`` for ``get_ipython().METHOD(...)`` calls."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    owner = node.func.value
    if not (
        isinstance(owner, ast.Call)
        and isinstance(owner.func, ast.Name)
        and owner.func.id == "get_ipython"
    ):
        return None
    args: list[Any] = []
    for arg in node.args:
        args.append(arg.value if isinstance(arg, ast.Constant) else None)
    return node.func.attr, args


def _drop_note(args: list[Any]) -> str:
    name, line = (args + [None, None])[:2]
    return f"%{name} {line}".rstrip() + f": {DROPPED[str(name)][1]}"


def _translate_call(method: str, args: list[Any], number: int, line: int) -> str | None:
    """The replacement text, None to drop the statement; raises :class:`CellRefused`."""
    if method in ("system", "getoutput"):
        raise CellRefused(
            number,
            line,
            "runs a shell command (!cmd), which a promoted script may not do",
            hint="do it in Python (subprocess, pathlib, shutil), or tag the cell skip-promote",
        )
    if method in ("run_line_magic", "run_cell_magic") and args and isinstance(args[0], str):
        name = args[0]
        if name == "pinfo" or name == "pinfo2" or name == "psearch":
            raise CellRefused(
                number,
                line,
                "asks for help (obj?), which only IPython answers",
                hint="remove the ?, or tag the cell skip-promote",
            )
        argline = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        if name == "qsubmit":
            body = args[2] if method == "run_cell_magic" and len(args) > 2 else None
            if method == "run_cell_magic" and not isinstance(body, str):
                raise CellRefused(number, line, "%%qsubmit has no cell body", hint=_QSUBMIT_HINT)
            return _qsubmit(argline, body, number, line)
        rule = DROPPED.get(name)
        if method == "run_line_magic" and rule is not None and rule[0](argline):
            return None
        form = "%%" if method == "run_cell_magic" else "%"
        allowed = "%qsubmit, %%qsubmit, %matplotlib inline, %config InlineBackend.*"
        raise CellRefused(
            number,
            line,
            f"uses the magic {form}{name}, which cannot be translated faithfully to plain Python",
            hint=f"a promoted script may use {allowed}; rewrite the rest in Python or tag "
            "the cell skip-promote",
        )
    raise CellRefused(
        number,
        line,
        f"uses get_ipython().{method}(...), which exists only inside IPython",
        hint="use plain Python, or tag the cell skip-promote",
    )


_QSUBMIT_HINT = (
    "use %qsubmit CIRCUIT [--shots N] [--seed S] [--backend B] [--method M] [--noise NAME] "
    "[--tag T] [--bind NAME=VALUE] [--timeout SECONDS] with literal values"
)


def _qsubmit(argline: str, body: str | None, number: int, line: int) -> str:
    from IPython.core.error import UsageError

    from ..kernel.qsubmit import DEFAULT_TIMEOUT, _parser, parse_bind

    if "$" in argline or "{" in argline:
        raise CellRefused(
            number,
            line,
            "%qsubmit's arguments use $name or {expression}, which IPython expands at run time",
            hint="write the values literally",
        )
    try:
        args = _parser().parse_args(shlex.split(argline))
        bind = parse_bind(args.bind)
    except (UsageError, ValueError) as exc:
        raise CellRefused(number, line, f"%qsubmit: {exc}", hint=_QSUBMIT_HINT) from None
    if args.status or args.cancel or args.no_wait:
        flag = "--status" if args.status else "--cancel" if args.cancel else "--no-wait"
        raise CellRefused(
            number,
            line,
            f"%qsubmit {flag} follows a job interactively; a promoted script waits for its results",
            hint="submit and wait (drop the option), or tag the cell skip-promote",
        )
    if args.shots < 1:
        raise CellRefused(number, line, "%qsubmit --shots must be positive", hint=_QSUBMIT_HINT)
    if body is not None:
        if args.circuit:
            raise CellRefused(
                number, line, "%%qsubmit takes OpenQASM in the cell, not a name", hint=_QSUBMIT_HINT
            )
        target = repr(body)
    else:
        if not args.circuit or not args.circuit.isidentifier():
            raise CellRefused(
                number,
                line,
                "%qsubmit must name a circuit variable",
                hint=_QSUBMIT_HINT,
            )
        target = args.circuit
    options = [f"shots={args.shots!r}", f"seed={args.seed!r}"]
    if args.backend != "aer_simulator":
        options.append(f"backend={args.backend!r}")
    if args.method is not None:
        options.append(f"method={args.method!r}")
    if args.noise is not None:
        options.append(f"noise={args.noise!r}")
    if args.tag:
        options.append(f"tags={list(args.tag)!r}")
    if bind:
        options.append(f"bind={bind!r}")
    if args.timeout != DEFAULT_TIMEOUT:
        options.append(f"timeout={args.timeout!r}")
    return f"{RUNTIME_NAME}.submit({target}, {', '.join(options)})"


# ---- imports -----------------------------------------------------------------------------------
def _rewrite_imports(
    tree: ast.Module, code: str, span: Any, edits: list[tuple[int, int, str]], number: int
) -> set[str]:
    """Top-level module names imported; ``jupyter_qsecure.secrets`` imports rewritten."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = []
            changed = False
            for alias in node.names:
                found.add(alias.name.split(".")[0])
                _check_qsecure_module(alias.name, number, node.lineno)
                if alias.name == _SECRETS_MODULE:
                    if alias.asname is None:
                        raise CellRefused(
                            number,
                            node.lineno,
                            f"imports {_SECRETS_MODULE} without a name",
                            hint="write `from jupyter_qsecure import secrets` (the script "
                            "reads the same names from jupyter_qsecure.runtime)",
                        )
                    names.append(f"{_RUNTIME_SECRETS} as {alias.asname}")
                    changed = True
                else:
                    names.append(alias.name + (f" as {alias.asname}" if alias.asname else ""))
            if changed:
                edits.append((*span(node), "import " + ", ".join(names)))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
            module = node.module
            if module == "jupyter_qsecure":
                for alias in node.names:
                    if alias.name not in ("secrets", "runtime", "__version__"):
                        raise CellRefused(
                            number,
                            node.lineno,
                            f"imports jupyter_qsecure.{alias.name}, which promoted scripts "
                            "do not have",
                            hint="promoted scripts may use jupyter_qsecure.secrets (as "
                            "jupyter_qsecure.runtime.secrets) and jupyter_qsecure.runtime",
                        )
                if any(alias.name == "secrets" for alias in node.names):
                    rest = [a for a in node.names if a.name != "secrets"]
                    secrets_alias = next(a for a in node.names if a.name == "secrets")
                    text = "from jupyter_qsecure.runtime import secrets" + (
                        f" as {secrets_alias.asname}" if secrets_alias.asname else ""
                    )
                    if rest:
                        text += "; from jupyter_qsecure import " + ", ".join(
                            a.name + (f" as {a.asname}" if a.asname else "") for a in rest
                        )
                    edits.append((*span(node), text))
                continue
            _check_qsecure_module(module, number, node.lineno)
            if module == _SECRETS_MODULE:
                listed = ", ".join(
                    a.name + (f" as {a.asname}" if a.asname else "") for a in node.names
                )
                edits.append((*span(node), f"from {_RUNTIME_SECRETS} import {listed}"))
    return found


def _check_qsecure_module(module: str, number: int, line: int) -> None:
    if module.split(".")[0] != "jupyter_qsecure" or module == "jupyter_qsecure":
        return
    if module == _SECRETS_MODULE or module.startswith("jupyter_qsecure.runtime"):
        return
    raise CellRefused(
        number,
        line,
        f"imports {module}, which promoted scripts do not have",
        hint="promoted scripts may use jupyter_qsecure.secrets and jupyter_qsecure.runtime",
    )


# ---- names the script would lack ----------------------------------------------------------------
def _check_names(body: str) -> None:
    """Refuse IPython builtins (``display``) used but never defined, and our own name."""
    tree = ast.parse(body)
    bound: set[str] = set(dir(builtins))
    used: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                bound.add(node.id)
            else:
                used.setdefault(node.id, node.lineno)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    if RUNTIME_NAME in bound:
        raise CellRefused(
            _cell_of(body, _first_line(tree, RUNTIME_NAME)),
            None,
            f"binds the name {RUNTIME_NAME}, which the promoted script reserves",
            hint="rename it",
        )
    _check_kernel_token(tree, body)
    if "display" in used and "display" not in bound:
        raise CellRefused(
            _cell_of(body, used["display"]),
            None,
            "uses display(), IPython's built-in, which plain Python does not have",
            hint="use print(...), or `from IPython.display import display` explicitly",
        )


def _check_kernel_token(tree: ast.Module, body: str) -> None:
    """Refuse ``secrets.token()``: the kernel's own token, for the Jupyter server's job
    broker. A script has neither (its jobs go through :mod:`jupyter_qsecure.runtime` in
    its own process), and handing it the script's token instead would do something else."""
    modules: set[str] = set()  # names bound to jupyter_qsecure.runtime.secrets
    line: int | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "jupyter_qsecure.runtime":
            modules |= {a.asname or a.name for a in node.names if a.name == "secrets"}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == _RUNTIME_SECRETS and a.asname}
        if isinstance(node, ast.ImportFrom) and node.module == _RUNTIME_SECRETS:
            if any(a.name == "token" for a in node.names):
                line = node.lineno if line is None else min(line, node.lineno)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "token"
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            line = node.lineno if line is None else min(line, node.lineno)
    if line is not None:
        raise CellRefused(
            _cell_of(body, line),
            None,
            "uses secrets.token(), the kernel's own token for the Jupyter server's job "
            "broker, which a promoted script does not have",
            hint="submit circuits with %qsubmit (the script runs them through "
            "jupyter_qsecure.runtime), read secrets with secrets.get, or tag the cell "
            "skip-promote",
        )


def _first_line(tree: ast.AST, name: str) -> int:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name:
            return node.lineno
        if isinstance(node, ast.alias) and (node.asname or node.name) == name:
            return getattr(node, "lineno", 1)
    return 1


def _cell_of(body: str, lineno: int) -> int:
    """The notebook cell (1-based) of a line of the body, from its ``# %% cell N`` marker."""
    cell = 0
    for number, text in enumerate(body.splitlines(), start=1):
        if text.startswith("# %% "):
            marker = text.split("cell ", 1)[-1].split(":", 1)[0]
            if marker.isdigit():
                cell = int(marker)
        if number >= lineno:
            break
    return cell
