"""Fake secret values of the sizes issue 11 asks for, generated at run time (never committed)."""

from __future__ import annotations

import json
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jupyter_qsecure.scan.exact import encoded_forms

#: Length of the pieces of a value that :func:`shows` looks for.
PIECE = 16


def service_account_json() -> str:
    """A Google-style service-account key (about 2,300 characters) with a fresh PEM key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    project = "proj-" + secrets.token_hex(4)
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project,
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": f"runner@{project}.iam.gserviceaccount.com",
            "client_id": str(secrets.randbelow(10**20)),
        }
    )


def sized_values() -> dict[str, str]:
    """name -> value: 32 and 300 random URL-safe characters, and a service-account JSON."""
    return {
        "v32": secrets.token_urlsafe(32)[:32],
        "v300": secrets.token_urlsafe(300)[:300],
        "sa": service_account_json(),
    }


def shows(text: str, value: str) -> bool:
    """Whether ``text`` shows ``value``, one of its encodings, or a piece of 16 characters.

    Assert on the boolean (``assert not shows(...)``): pytest prints the operands of a
    failed comparison, and these are values.
    """
    if any(form in text for form in encoded_forms(value)):
        return True
    return any(value[i : i + PIECE] in text for i in range(0, max(1, len(value) - PIECE + 1), 4))
