"""Redaction of notebooks, string by string: what is replaced and what is kept.

From mutation testing (issue 15): each output below exercises one path of
``redact._apply``: a secret split over two stream messages (one placeholder, in the
first piece), two secrets in one string, secrets found in decoded text (ANSI
tracebacks, HTML) replaced literally where they appear as they are, the same secret
twice, and a secret split by markup, whose whole string is replaced.
"""

from __future__ import annotations

import copy
import secrets
import string
from typing import Any

from jupyter_qsecure.scan import Scanner
from jupyter_qsecure.scan.redact import placeholder_for, redact_notebook

AWS = placeholder_for("AWS Access Key")
INJECTED = placeholder_for("Injected Secret")


def fake_key() -> str:
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def _notebook(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    cell = {"cell_type": "code", "source": "run()", "metadata": {}, "outputs": outputs}
    return {
        "cells": [{**cell, "execution_count": 1}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _stream(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text}


def _display(mime: str, text: str) -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {}, "data": {mime: text}}


def test_each_secret_is_replaced_where_it_is_and_the_rest_is_kept() -> None:
    split, first, injected, traced, twice, other, tagged = (fake_key() for _ in range(7))
    value = injected[4:] + "xyzw12"  # an injected value: matched exactly
    outputs = [
        _stream(f"a = '{split[:10]}"),
        _stream(f"{split[10:]}' end\n"),
        _display("text/plain", f"{first} and {value}\n"),
        _display("text/html", f"<p>key: <b>{tagged[:10]}</b>{tagged[10:]}</p>"),
        {
            "output_type": "error",
            "ename": "KeyError",
            "evalue": "x",
            "traceback": ["Traceback", f"\x1b[31mKeyError\x1b[0m: '{traced}'"],
        },
        _display("text/html", f"<p>{twice}</p><p>{twice}</p><b>{other}</b>"),
    ]
    nb = _notebook(outputs)
    before = copy.deepcopy(nb)
    out = redact_notebook(nb, scanner=Scanner(), exact_values=[value])
    assert nb == before  # a copy is redacted
    assert out["cells"][0]["outputs"] == [
        _stream(f"a = '{AWS}"),  # one placeholder for a value split over two messages
        _stream("' end\n"),
        _display("text/plain", f"{AWS} and {INJECTED}\n"),
        _display("text/html", AWS),  # cut by markup: the whole string goes
        {
            "output_type": "error",
            "ename": "KeyError",
            "evalue": "x",
            "traceback": ["Traceback", f"\x1b[31mKeyError\x1b[0m: '{AWS}'"],
        },
        _display("text/html", f"<p>{AWS}</p><p>{AWS}</p><b>{AWS}</b>"),
    ]
