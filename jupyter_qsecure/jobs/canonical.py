"""A canonical form and hash of a ``QuantumCircuit`` (QPY and QASM3 are not canonical).

``circuit_hash(qc)`` is the SHA-256 (hex) of the RFC 8785 canonical JSON of
``canonical_form(qc)`` (the form holds no JSON floats, so the C ``json`` encoder
produces exactly the RFC 8785 bytes; the tests check this against ``canonical_json``). It is a pure function of the circuit's semantics as defined
below: identical across processes, sessions, Python hash seeds, QPY round trips and
separately constructed but equal circuits.

What is normalised
------------------
* **Bits** are referenced by their absolute index in ``qc.qubits`` / ``qc.clbits``
  (never by object identity). Registers are listed in declaration order with their
  name and the absolute indices of their bits, so overlapping registers and loose
  bits (in no register) are represented exactly. Bit order is kept: it decides the
  layout of the counts.
* **Gate order**: the circuit's DAG is a partial order. Instructions are emitted
  in a topological order whose ties (instructions whose order does not matter,
  i.e. that share no qubit, clbit or variable) are broken by the canonical JSON of
  the instruction itself, so ``h(0); x(1)`` and ``x(1); h(0)`` hash the same.
  Control-flow bodies are ordered the same way, recursively.
* **Parameters by name**, never by UUID: a ``Parameter`` is ``{"param": name}``, a
  ``ParameterExpression`` is its (Qiskit-normalised, name-sorted, sympy-free)
  string plus the sorted names of its parameters. A fully bound expression is
  its numeric value.
* **Numbers**: a float is its shortest round-trip ``repr`` (exact: two different
  doubles never share a string; ``-0.0`` is written as ``0.0``); nothing is
  rounded, so ``0.1 + 0.2`` and ``0.3`` are different angles. Gate parameters that
  are integers are taken as floats (``rx(1)`` is ``rx(1.0)``); integers elsewhere
  (delay durations in ``dt``, switch values) stay integers. A complex number is
  ``[real, imag]``, an ``ndarray`` (unitary, isometry, ...) is its shape plus its
  elements as ``[real, imag]`` pairs in C order.
* **Control flow** (``if_else``, ``while_loop``, ``for_loop``, ``switch_case``,
  ``box``, ``break_loop``, ``continue_loop``): conditions and targets (clbit,
  register or classical expression), loop index sets, case values, and bodies
  recursed. A for-loop's variable is a bound name, renamed ``$loop<depth>`` (the
  builder names it from a process-wide counter, ``_loop_i_<n>``). Body bits are mapped to the enclosing circuit's bits, so
  the (arbitrary) bit order inside a body does not matter.
* **Classical expressions**, variables (input, captured, declared) and stretches
  by name and type; ``Store`` instructions.
* **Custom gates**: name, parameters and the hash of their definition (recursed);
  controlled gates with their control state and base gate; annotated operations
  with their base operation and modifiers. Qiskit's standard gates are identified
  by name (their meaning is fixed by the Qiskit version the manifest records).
  Library gates whose parameters fully define them (``unitary``, ``initialize``,
  ``state_preparation``, ``isometry``, ``hamiltonian``, ``permutation``, ...)
  are identified by name and parameters, without synthesising a definition.
* **Global phase**, measurements, resets, barriers (their qubits), delays with
  their unit.

What is deliberately NOT normalised
-----------------------------------
* Gate equivalences and decompositions: ``cx`` and ``h; cz; h`` hash differently,
  as do ``rz(2*pi)`` and no gate, and ``u(pi/2, 0, pi)`` and ``h``. The hash is of
  the circuit as written, not of its unitary.
* Algebraically equal but differently written parameter expressions beyond
  Qiskit's own normalisation (``2*(a+b)`` vs ``2*a + 2*b``).
* Floats that differ in the last bit.
* Excluded entirely (not semantics): the circuit's ``name`` (QPY and QASM
  round trips and ``copy()`` change it), ``metadata``, instruction labels, and
  the transpiler's ``layout`` (measurements already fix which qubit lands in
  which clbit). Register *names* are included, as they shape the counts.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from qiskit.circuit import (
    AnnotatedOperation,
    Barrier,
    Bit,
    ClassicalRegister,
    Clbit,
    ControlFlowOp,
    ControlledGate,
    Delay,
    Gate,
    Measure,
    Parameter,
    ParameterExpression,
    QuantumCircuit,
    Qubit,
    Reset,
    Store,
)
from qiskit.circuit.annotated_operation import ControlModifier, InverseModifier, PowerModifier
from qiskit.circuit.classical import expr
from qiskit.circuit.controlflow import (
    CASE_DEFAULT,
    BoxOp,
    ForLoopOp,
    IfElseOp,
    SwitchCaseOp,
    WhileLoopOp,
)

from .._lru import LRU
from ..errors import QSecureError
from ..signing.canonical import canonical_json

__all__ = [
    "FORM_VERSION",
    "CanonicalisationError",
    "canonical_form",
    "circuit_hash",
    "circuit_hash_of_encoded",
    "circuit_summary",
    "hash_many",
]

#: Version tag inside every canonical form; changes whenever the form changes.
FORM_VERSION = "jupyter-qsecure/circuit/v1"


class CanonicalisationError(QSecureError):
    """A circuit holds something the canonical form cannot represent deterministically."""


def _params_define(*names: str) -> tuple[type, ...]:
    """Library classes (those present in this Qiskit) fully defined by name and params."""
    from qiskit.circuit import library

    found = []
    for name in names:
        cls = getattr(library, name, None)
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


_PARAM_DEFINED: tuple[type, ...] = _params_define(
    "UnitaryGate",
    "HamiltonianGate",
    "Initialize",
    "StatePreparation",
    "Isometry",
    "DiagonalGate",
    "UCGate",
    "UCPauliRotGate",
    "PermutationGate",
    "LinearFunction",
    "PauliGate",
    "QFTGate",
)


# ---- scalars ------------------------------------------------------------------------------
def _float(value: float) -> str:
    value = float(value)
    if value == 0.0:
        return "0.0"  # -0.0 is the same angle
    if math.isnan(value):
        return "nan"
    return repr(value)  # shortest round-trip repr: exact, platform independent ("inf" too)


def _number(value: Any, *, int_as_float: bool = False) -> dict[str, Any] | None:
    """A tagged form of a plain number, or None when ``value`` is not one."""
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if isinstance(value, numbers.Integral):
        return {"float": _float(float(value))} if int_as_float else {"int": str(int(value))}
    if isinstance(value, numbers.Real):
        return {"float": _float(float(value))}
    if isinstance(value, numbers.Complex):
        value = complex(value)
        if value.imag == 0.0:
            return {"float": _float(value.real)}
        return {"complex": [_float(value.real), _float(value.imag)]}
    return None


def _expression(
    value: ParameterExpression, renames: dict[Parameter, Parameter] | None = None
) -> dict[str, Any]:
    if renames:
        replace = {p: renames[p] for p in value.parameters if p in renames}
        if replace:
            value = value.subs(replace)
    if isinstance(value, Parameter):
        return {"param": value.name}
    if not value.parameters:  # fully bound: its number
        number = value.numeric()
        form = _number(number, int_as_float=True)
        if form is None:  # pragma: no cover - numeric() returns int/float/complex
            raise CanonicalisationError(f"bound parameter expression has value {number!r}")
        return form
    return {"expr": str(value), "params": sorted(p.name for p in value.parameters)}


def _array(value: np.ndarray) -> dict[str, Any]:
    data = np.asarray(value, dtype=complex)
    flat = [[_float(z.real), _float(z.imag)] for z in data.reshape(-1)]
    return {"array": {"shape": list(data.shape), "data": flat}}


# ---- classical expressions ----------------------------------------------------------------
def _type(value: Any) -> str:
    return repr(value)  # e.g. "Bool()", "Uint(8)", "Float()", "Duration()"


class _Scope:
    """Where a circuit's bits land in the outermost circuit being canonicalised."""

    def __init__(self, qubits: dict[Bit, int], clbits: dict[Bit, int]) -> None:
        self.qubits = qubits
        self.clbits = clbits

    def qubit(self, bit: Qubit) -> int:
        return self.qubits[bit]

    def clbit(self, bit: Clbit) -> int:
        return self.clbits[bit]

    def creg(self, register: ClassicalRegister) -> dict[str, Any]:
        return {"creg": register.name, "bits": [self.clbits[bit] for bit in register]}


class _Canonicaliser:
    def __init__(self) -> None:
        self._definitions: dict[int, tuple[Any, str]] = {}
        # for-loop variables are bound names: renamed by nesting depth ("$loop0", ...),
        # as the control-flow builder names them from a process-wide counter.
        self._loop_names: dict[Parameter, Parameter] = {}

    # ---- circuits ---------------------------------------------------------------------
    def top(self, qc: QuantumCircuit) -> dict[str, Any]:
        if not isinstance(qc, QuantumCircuit):
            raise CanonicalisationError(
                f"expected a qiskit QuantumCircuit, got {type(qc).__name__}",
                hint="pass a QuantumCircuit (or load QASM/QPY into one first)",
            )
        scope = _Scope(
            {bit: i for i, bit in enumerate(qc.qubits)},
            {bit: i for i, bit in enumerate(qc.clbits)},
        )
        form: dict[str, Any] = {
            "format": FORM_VERSION,
            "num_qubits": qc.num_qubits,
            "num_clbits": qc.num_clbits,
            "qregs": [{"name": r.name, "bits": [scope.qubit(b) for b in r]} for r in qc.qregs],
            "cregs": [{"name": r.name, "bits": [scope.clbit(b) for b in r]} for r in qc.cregs],
        }
        form.update(self._body(qc, scope))
        return form

    def _body(self, qc: QuantumCircuit, scope: _Scope) -> dict[str, Any]:
        """Global phase, variables and ordered instructions of ``qc`` seen through ``scope``."""
        form: dict[str, Any] = {
            "global_phase": self._param(qc.global_phase, int_as_float=True),
            "instructions": self._instructions(qc, scope),
        }
        variables = {
            "input": [self._var_decl(v) for v in qc.iter_input_vars()],
            "captured": [self._var_decl(v) for v in qc.iter_captured_vars()],
            "declared": [self._var_decl(v) for v in qc.iter_declared_vars()],
            "captured_stretches": [s.name for s in _iter(qc, "iter_captured_stretches")],
            "declared_stretches": [s.name for s in _iter(qc, "iter_declared_stretches")],
        }
        variables = {k: sorted(v, key=_json_text) for k, v in variables.items() if v}
        if variables:
            form["vars"] = variables
        return form

    def _var_decl(self, var: expr.Var) -> dict[str, Any]:
        return {"name": var.name, "type": _type(var.type)}

    def _instructions(self, qc: QuantumCircuit, scope: _Scope) -> list[dict[str, Any]]:
        """Every instruction, in a topological order with a content-based tie-break.

        The dependency graph is the circuit's DAG: an instruction depends on the last
        earlier instruction on each of its wires (qubits, clbits, condition bits and
        classical variables), exactly as in ``qiskit.converters.circuit_to_dag``.
        """
        forms: list[dict[str, Any]] = []
        keys: list[str] = []
        remaining: list[int] = []
        succs: list[list[int]] = []
        last_on_wire: dict[Any, int] = {}
        for index, instruction in enumerate(qc.data):
            try:
                op = instruction.operation
            except Exception as exc:  # e.g. a QPY file that lost a delay's unit
                raise CanonicalisationError(
                    f"instruction {index} ({instruction.name}) of the circuit is invalid: {exc}",
                    hint="rebuild the circuit; QPY (before format 18) drops delay units",
                ) from exc
            form = self._instruction(op, instruction.qubits, instruction.clbits, scope)
            forms.append(form)
            keys.append(_json_text(form))
            succs.append([])
            preds: set[int] = set()
            for wire in _wires(op, instruction.qubits, instruction.clbits):
                before = last_on_wire.get(wire)
                if before is not None and before not in preds:
                    preds.add(before)
                    succs[before].append(index)
                last_on_wire[wire] = index
            remaining.append(len(preds))
        # Kahn's algorithm; among ready instructions, the smallest canonical JSON first.
        # Two ready instructions with equal keys are identical, so the tie is harmless.
        ready = [(keys[i], i) for i, n in enumerate(remaining) if n == 0]
        heapq.heapify(ready)
        ordered: list[dict[str, Any]] = []
        while ready:
            _, index = heapq.heappop(ready)
            ordered.append(forms[index])
            for succ in succs[index]:
                remaining[succ] -= 1
                if remaining[succ] == 0:
                    heapq.heappush(ready, (keys[succ], succ))
        return ordered

    def _instruction(
        self, op: Any, qargs: Sequence[Qubit], cargs: Sequence[Clbit], scope: _Scope
    ) -> dict[str, Any]:
        qubits = [scope.qubit(q) for q in qargs]
        clbits = [scope.clbit(c) for c in cargs]
        if isinstance(op, ControlFlowOp):
            # Body bits map to these wires positionally; the bodies are written in the
            # outer circuit's indices, so only the set of wires touched is kept here.
            return {
                "op": self._control_flow(op, qargs, cargs, scope),
                "qubits": sorted(qubits),
                "clbits": sorted(clbits),
            }
        return {"op": self._operation(op, scope), "qubits": qubits, "clbits": clbits}

    # ---- operations -------------------------------------------------------------------
    def _operation(self, op: Any, scope: _Scope | None = None) -> dict[str, Any]:
        form: dict[str, Any] = {
            "name": op.name,
            "num_qubits": op.num_qubits,
            "num_clbits": op.num_clbits,
        }
        if isinstance(op, AnnotatedOperation):
            form["base_op"] = self._operation(op.base_op)
            form["modifiers"] = [_modifier(m) for m in op.modifiers]
            return form
        if isinstance(op, (Measure, Reset, Barrier)):
            return form
        if isinstance(op, Delay):
            # QPY turns 5.0 into 5 and back: durations are compared as floats.
            form["duration"] = self._param(op.duration, int_as_float=True)
            form["unit"] = op.unit
            return form
        if isinstance(op, Store):
            if scope is None:  # pragma: no cover - Store only occurs in circuit bodies
                raise CanonicalisationError("store outside a circuit")
            form["lvalue"] = self._expr(op.lvalue, scope)
            form["rvalue"] = self._expr(op.rvalue, scope)
            return form
        is_gate = isinstance(op, Gate)
        params = getattr(op, "params", [])
        form["params"] = [self._param(p, int_as_float=is_gate) for p in params]
        if isinstance(op, ControlledGate):
            form["num_ctrl_qubits"] = op.num_ctrl_qubits
            form["ctrl_state"] = str(op.ctrl_state)
        if getattr(op, "_standard_gate", None) is not None:
            return form  # a Qiskit standard gate: name and params define it
        if isinstance(op, ControlledGate):
            form["base_gate"] = self._operation(op.base_gate)
            return form
        if isinstance(op, _PARAM_DEFINED):
            return form
        form["definition"] = self._definition(op)
        return form

    def _definition(self, op: Any) -> str | None:
        """Hash of a custom operation's definition (cached per definition object)."""
        definition = getattr(op, "definition", None)
        if definition is None:
            return None  # opaque: identified by name, sizes and params only
        cached = self._definitions.get(id(definition))
        if cached is not None and cached[0] is definition:
            return cached[1]
        form = self.top(definition)
        # A definition's register layout is not part of the gate's meaning.
        form.pop("qregs", None)
        form.pop("cregs", None)
        digest = hashlib.sha256(_jcs(form)).hexdigest()
        self._definitions[id(definition)] = (definition, digest)
        return digest

    def _control_flow(
        self,
        op: ControlFlowOp,
        qargs: Sequence[Qubit],
        cargs: Sequence[Clbit],
        scope: _Scope,
    ) -> dict[str, Any]:
        form: dict[str, Any] = {
            "name": op.name,
            "num_qubits": op.num_qubits,
            "num_clbits": op.num_clbits,
        }

        def body(block: QuantumCircuit | None) -> dict[str, Any] | None:
            if block is None:
                return None
            inner = _Scope(
                {b: scope.qubit(q) for b, q in zip(block.qubits, qargs, strict=True)},
                {b: scope.clbit(c) for b, c in zip(block.clbits, cargs, strict=True)},
            )
            return self._body(block, inner)

        if isinstance(op, IfElseOp):
            form["condition"] = self._condition(op.condition, scope)
            form["true_body"] = body(op.params[0])
            form["false_body"] = body(op.params[1])
        elif isinstance(op, WhileLoopOp):
            form["condition"] = self._condition(op.condition, scope)
            form["body"] = body(op.params[0])
        elif isinstance(op, ForLoopOp):
            indexset, loop_parameter, block = op.params
            if isinstance(indexset, range):
                form["indexset"] = {
                    "range": [str(indexset.start), str(indexset.stop), str(indexset.step)]
                }
            else:
                form["indexset"] = {"values": [str(int(i)) for i in indexset]}
            if loop_parameter is None:
                form["loop_parameter"] = None
                form["body"] = body(block)
            else:
                bound = Parameter(f"$loop{len(self._loop_names)}")
                previous = self._loop_names.get(loop_parameter)
                self._loop_names[loop_parameter] = bound
                try:
                    form["loop_parameter"] = bound.name
                    form["body"] = body(block)
                finally:
                    if previous is None:
                        del self._loop_names[loop_parameter]
                    else:  # pragma: no cover - a loop re-binding its own parameter
                        self._loop_names[loop_parameter] = previous
        elif isinstance(op, SwitchCaseOp):
            form["target"] = self._condition_target(op.target, scope)
            cases = []
            for values, block in op.cases_specifier():
                cases.append(
                    {
                        "values": [
                            "default" if v is CASE_DEFAULT else self._param(v) for v in values
                        ],
                        "body": body(block),
                    }
                )
            form["cases"] = cases
        elif isinstance(op, BoxOp):
            form["duration"] = None if op.duration is None else self._param(op.duration)
            form["unit"] = op.unit
            form["annotations"] = [repr(a) for a in getattr(op, "annotations", ())]
            form["body"] = body(op.params[0])
        else:  # break_loop, continue_loop and any future op without bodies
            form["blocks"] = [body(b) for b in op.blocks]
        return form

    # ---- conditions and expressions ---------------------------------------------------
    def _condition(self, condition: Any, scope: _Scope) -> dict[str, Any]:
        if isinstance(condition, expr.Expr):
            return {"expr": self._expr(condition, scope)}
        target, value = condition
        return {"target": self._condition_target(target, scope), "value": str(int(value))}

    def _condition_target(self, target: Any, scope: _Scope) -> dict[str, Any]:
        if isinstance(target, Clbit):
            return {"clbit": scope.clbit(target)}
        if isinstance(target, ClassicalRegister):
            return scope.creg(target)
        if isinstance(target, expr.Expr):
            return {"expr": self._expr(target, scope)}
        raise CanonicalisationError(f"unsupported condition target {type(target).__name__}")

    def _expr(self, node: Any, scope: _Scope) -> dict[str, Any]:
        if isinstance(node, expr.Var):
            if node.standalone:
                return {"var": node.name, "type": _type(node.type)}
            if isinstance(node.var, Clbit):
                return {"clbit": scope.clbit(node.var), "type": _type(node.type)}
            return {**scope.creg(node.var), "type": _type(node.type)}
        if isinstance(node, expr.Stretch):
            return {"stretch": node.name}
        if isinstance(node, expr.Value):
            value = node.value
            number = _number(value)
            return {
                "value": number if number is not None else repr(value),
                "type": _type(node.type),
            }
        if isinstance(node, expr.Unary):
            return {
                "unary": node.op.name,
                "operand": self._expr(node.operand, scope),
                "type": _type(node.type),
            }
        if isinstance(node, expr.Binary):
            return {
                "binary": node.op.name,
                "left": self._expr(node.left, scope),
                "right": self._expr(node.right, scope),
                "type": _type(node.type),
            }
        if isinstance(node, expr.Cast):
            return {
                "cast": self._expr(node.operand, scope),
                "implicit": bool(node.implicit),
                "type": _type(node.type),
            }
        if isinstance(node, expr.Index):
            return {
                "index": self._expr(node.index, scope),
                "target": self._expr(node.target, scope),
                "type": _type(node.type),
            }
        raise CanonicalisationError(f"unsupported classical expression {type(node).__name__}")

    # ---- parameters ---------------------------------------------------------------------
    def _param(self, value: Any, *, int_as_float: bool = False) -> Any:
        if isinstance(value, ParameterExpression):
            return _expression(value, self._loop_names)
        number = _number(value, int_as_float=int_as_float)
        if number is not None:
            return number
        if isinstance(value, np.ndarray):
            return _array(value)
        if isinstance(value, str):
            return {"str": value}
        if isinstance(value, QuantumCircuit):
            form = self.top(value)
            form.pop("qregs", None)
            form.pop("cregs", None)
            return {"circuit": form}
        if isinstance(value, range):
            return {"range": [str(value.start), str(value.stop), str(value.step)]}
        if isinstance(value, (list, tuple)):
            return {"list": [self._param(v, int_as_float=int_as_float) for v in value]}
        raise CanonicalisationError(
            f"cannot canonicalise a parameter of type {type(value).__name__}",
            hint="use numbers, Parameters, arrays or strings as instruction parameters",
        )


def _json_text(form: Any) -> str:
    """RFC 8785 text of a canonical form, via the C JSON encoder.

    Equal to ``canonical_json`` for our forms because they contain no floats (numbers
    are tagged strings), only ASCII object keys (so code-point order is UTF-16 order)
    and only small integers (sizes and indices; user integers are strings). Strings
    are escaped as RFC 8785 requires (short forms and lowercase ``\\u00xx``).
    """
    return json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _jcs(form: Any) -> bytes:
    try:
        return _json_text(form).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: let the reference encoder decide
        return canonical_json(form)


def _wires(op: Any, qubits: Sequence[Qubit], clbits: Sequence[Clbit]) -> list[Any]:
    """The wires an instruction orders itself on (as the DAG's wires)."""
    wires: list[Any] = [*qubits, *clbits]
    if isinstance(op, ControlFlowOp):
        for target in (getattr(op, "condition", None), getattr(op, "target", None)):
            if isinstance(target, tuple):
                target = target[0]
            if isinstance(target, Clbit):
                wires.append(target)
            elif isinstance(target, ClassicalRegister):
                wires.extend(target)
            elif isinstance(target, expr.Expr):
                wires.extend(_expr_wires(target))
        for block in op.blocks:
            wires.extend(block.iter_captured_vars())
    elif isinstance(op, Store):
        wires.extend(_expr_wires(op.lvalue))
        wires.extend(_expr_wires(op.rvalue))
    return list(dict.fromkeys(wires))


def _expr_wires(node: expr.Expr) -> list[Any]:
    wires: list[Any] = []
    for var in expr.iter_vars(node):
        if var.standalone or isinstance(var.var, Clbit):
            wires.append(var if var.standalone else var.var)
        else:
            wires.extend(var.var)
    return wires


def _modifier(modifier: Any) -> dict[str, Any]:
    if isinstance(modifier, InverseModifier):
        return {"inverse": True}
    if isinstance(modifier, ControlModifier):
        return {"control": [modifier.num_ctrl_qubits, str(modifier.ctrl_state)]}
    if isinstance(modifier, PowerModifier):
        return {"power": _Canonicaliser()._param(modifier.power, int_as_float=True)}
    raise CanonicalisationError(f"unsupported gate modifier {type(modifier).__name__}")


def _iter(qc: QuantumCircuit, method: str) -> Iterable[Any]:
    function: Callable[[], Iterable[Any]] | None = getattr(qc, method, None)
    return () if function is None else function()


# ---- public API ---------------------------------------------------------------------------
def canonical_form(qc: QuantumCircuit) -> dict[str, Any]:
    """The canonical, JSON-serialisable form of ``qc`` (see the module docstring)."""
    return _Canonicaliser().top(qc)


def circuit_hash(qc: QuantumCircuit) -> str:
    """SHA-256 (hex) of the RFC 8785 canonical JSON of :func:`canonical_form`."""
    return hashlib.sha256(_jcs(canonical_form(qc))).hexdigest()


#: :func:`circuit_hash_of_encoded` memo: SHA-256 of a QPY text -> circuit hash.
_HASH_BY_QPY: LRU[str, str] = LRU(256)


def circuit_hash_of_encoded(qc: QuantumCircuit, qpy_text: str) -> str:
    """:func:`circuit_hash` of ``qc``, memoised by ``qpy_text``, the QPY encoding of ``qc``
    that is sent with it (``jobs.client.encode_circuit``).

    The broker hashes the circuit it decodes from exactly that text, so equal texts have
    one hash; a circuit changed in place encodes to a new text and is hashed anew. A
    kernel submitting the same circuit again (a seed or shots sweep) skips the
    canonicalisation, about half a millisecond for a small circuit.
    """
    key = hashlib.sha256(qpy_text.encode("ascii", "surrogatepass")).hexdigest()
    digest = _HASH_BY_QPY.get(key)
    if digest is None:
        digest = circuit_hash(qc)
        _HASH_BY_QPY.put(key, digest)
    return digest


def hash_many(circuits: Iterable[QuantumCircuit]) -> list[str]:
    """:func:`circuit_hash` of each circuit, in order (custom-gate definitions hashed once)."""
    canonicaliser = _Canonicaliser()
    return [hashlib.sha256(_jcs(canonicaliser.top(qc))).hexdigest() for qc in circuits]


def circuit_summary(qc: QuantumCircuit) -> dict[str, Any]:
    """The figures the policy engine checks: sizes, depth, operation counts, parameters."""
    if not isinstance(qc, QuantumCircuit):
        raise CanonicalisationError(
            f"expected a qiskit QuantumCircuit, got {type(qc).__name__}",
            hint="pass a QuantumCircuit (or load QASM/QPY into one first)",
        )
    return {
        "num_qubits": qc.num_qubits,
        "num_clbits": qc.num_clbits,
        "depth": qc.depth(),
        "size": qc.size(),
        "count_ops": {str(name): int(n) for name, n in sorted(qc.count_ops().items())},
        "num_parameters": qc.num_parameters,
        "parameters": sorted(p.name for p in qc.parameters),
    }
