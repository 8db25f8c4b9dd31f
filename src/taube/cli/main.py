"""``taube COMMAND``: the one entry point.

``taube serve`` hands its arguments to ``taube.server.main`` by name: the
client commands must work where the server's extra is not installed, and the
layering rule (nothing but the server imports the server) holds.
"""

from __future__ import annotations

import importlib
import sys

import taube

USAGE = """usage: taube COMMAND [ARGS]

commands:
  serve       run the server (taube serve --help)
  version     print the version
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = args[0], args[1:]
    if command == "version":
        print(taube.__version__)
        return 0
    if command == "serve":
        try:
            server_main = importlib.import_module("taube.server.main")
        except ImportError as exc:  # pragma: no cover - depends on the install
            print(f"taube serve needs the server extra: pip install 'taube[server]' ({exc})",
                  file=sys.stderr)
            return 2
        return int(server_main.main(rest))
    print(f"taube: unknown command {command!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    sys.exit(main())
