"""``jupyter qsecure config``: every ``QSecure`` setting, its value and its help."""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import QSecure

#: Settings whose values are credentials: shown as set/unset only.
SENSITIVE = {"vault_token"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config",
        help="list every setting (c.QSecure.*) with its current value and help",
        description="List every QSecure setting: current value (from Jupyter config files and "
        "environment variables), the variables that override it, and what it does.",
    )
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(handler=run)


def _shown(name: str, value: Any) -> Any:
    if name in SENSITIVE:
        return "(set)" if value else "(not set)"
    return value


def run(args: argparse.Namespace, settings: QSecure) -> int:
    from ..config import ENV_OVERRIDES, LIVE_SETTINGS, config_dirs

    traits = settings.class_traits(config=True)
    rows = []
    for name in sorted(traits):
        rows.append(
            {
                "name": name,
                "value": _shown(name, getattr(settings, name)),
                "env": list(ENV_OVERRIDES.get(name, ())),
                "help": traits[name].help,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    for row in rows:
        env = f"  [env: {', '.join(row['env'])}]" if row["env"] else ""
        print(f"c.QSecure.{row['name']} = {row['value']!r}{env}")
        print(textwrap.indent(textwrap.fill(row["help"], 88), "    "))
    print(
        "\nRead from jupyter_qsecure_config and jupyter_server_config files (.py/.json) in: "
        + ", ".join(config_dirs())
        + f". A running Jupyter server applies a change to {', '.join(LIVE_SETTINGS)} at the "
        "next execution; other settings take effect when it restarts."
    )
    return 0
