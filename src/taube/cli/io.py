"""What every command does the same way: ask for a secret, print a result."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from taube.client import ClientError


def secret(variable: str, prompt: str) -> str:
    """``variable`` from the environment, else asked on the terminal."""
    value = os.environ.get(variable)
    if value:
        return value
    if not sys.stdin.isatty():
        raise ClientError(f"set {variable} (no terminal to ask on)")
    return getpass.getpass(prompt)


def out(args: argparse.Namespace, data: Any, text: str) -> None:
    """``data`` as a JSON line with ``--json``, else ``text``."""
    if args.json:
        print(json.dumps(data, ensure_ascii=False), flush=True)
    else:
        print(text, flush=True)
