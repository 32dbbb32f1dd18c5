"""Fake secrets generated at run time (never real, never committed as literals)."""

from __future__ import annotations

import base64
import json
import secrets
import string
from typing import Any

import nbformat

ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = ALNUM) -> str:
    """Random string with at least one digit, lower and upper letter when the alphabet allows."""
    while True:
        s = "".join(secrets.choice(alphabet) for _ in range(n))
        if alphabet != ALNUM or (
            any(c.isdigit() for c in s)
            and any(c.islower() for c in s)
            and any(c.isupper() for c in s)
        ):
            return s


def aws_key() -> str:
    return "AKIA" + rand(16, string.ascii_uppercase + "234567")


def github_token() -> str:
    return "ghp_" + rand(36)


def password() -> str:
    return rand(20)


def vault_token(prefix: str = "hvs.") -> str:
    return prefix + (rand(24) if len(prefix) == 2 else rand(90))


def ibm_quantum_token() -> str:
    return secrets.token_hex(64)


def openai_key(project: bool = True) -> str:
    return ("sk-proj-" if project else "sk-") + rand(48)


def azure_account_key() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode()


def pem_private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def code_notebook(*sources: str) -> Any:
    nb = nbformat.v4.new_notebook()
    for source in sources:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


def dumps_all(obj: Any) -> str:
    """Everything a result could expose, as one string (to assert the secret is absent)."""
    return json.dumps(obj, default=lambda o: repr(o))
