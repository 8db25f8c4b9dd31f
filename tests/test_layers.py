"""Imports point one way (``docs``: DESIGN, *Package layers*).

``proto`` ← ``crypto`` ← ``client`` ← ``cli``, ``tui``, ``connectors``;
``proto`` ← ``store`` ← ``server``. Nothing but ``server`` imports the server:
``taube serve`` reaches ``taube.server.main`` through ``importlib`` by name, so
that the client commands work where the server's extra is not installed, and
``taube.testing`` runs the server as a process.

Every module under ``src/taube`` is parsed (not imported), so an import inside
a function or under ``TYPE_CHECKING`` counts too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from collections import deque
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

import taube

SRC = Path(taube.__file__).parent

#: the taube packages each package may import (itself always); the root
#: ``taube`` (its ``__version__``) is open to all
ALLOWED: dict[str, set[str]] = {
    "proto": set(),
    "crypto": {"proto"},
    "client": {"proto", "crypto"},
    #: ``taube mail`` runs the e-mail connector, ``taube tui`` the terminal UI
    #: (each imported only by its command)
    "cli": {"proto", "crypto", "client", "connectors", "tui"},
    "tui": {"proto", "crypto", "client"},
    "connectors": {"proto", "crypto", "client"},
    "store": {"proto"},
    "server": {"proto", "store", "webapp"},
    "testing": {"proto", "crypto", "client"},
    "web": set(),
    #: the web app's built bundle (data only)
    "webapp": set(),
}

#: modules allowed to load the server by name, and which
DYNAMIC_SERVER_IMPORTS = {"taube.cli.main": {"taube.server.main"}}

#: third-party distributions ``proto`` may use: it is pure, no I/O
PROTO_THIRD_PARTY = {"msgspec", "cryptography"}
PROTO_FORBIDDEN_STDLIB = {
    "asyncio",
    "socket",
    "sqlite3",
    "subprocess",
    "threading",
    "os",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "urllib",
    "http",
    "logging",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def from_target(name: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The module a ``from`` statement in ``name`` names, relative ones resolved."""
    if not node.level:
        return node.module or ""
    base = name.split(".")
    keep = len(base) - node.level + (1 if is_package else 0)
    prefix = ".".join(base[:keep])
    return f"{prefix}.{node.module}" if node.module else prefix


def imports_of(name: str, path: Path) -> set[str]:
    """Every module named by an ``import`` or ``from`` statement, resolved."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = from_target(name, is_package, node)
            found.add(target)
            # ``from taube.store import engine`` imports ``taube.store.engine``
            found.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def dynamic_imports_of(path: Path) -> set[str]:
    """String constants passed to ``import_module`` / ``__import__``."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called in ("import_module", "__import__"):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            elif isinstance(arg, ast.JoinedStr):  # f"taube.server.http.{name}"
                head = arg.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    found.add(head.value.rstrip("."))
    return found


def package_of(module: str) -> str | None:
    """``taube.store.engine`` → ``store``; ``taube`` itself → ``None``."""
    parts = module.split(".")
    if parts[0] != "taube" or len(parts) == 1:
        return None
    return parts[1]


def taube_imports(name: str) -> dict[str, set[str]]:
    """The taube packages ``name`` imports, with the modules that show it."""
    return taube_imports_in(imports_of(name, MODULES[name]))


def taube_imports_in(targets: set[str]) -> dict[str, set[str]]:
    by_package: dict[str, set[str]] = {}
    for target in targets:
        package = package_of(target)
        if package is not None:
            by_package.setdefault(package, set()).add(target)
    return by_package


def test_the_source_tree_is_found() -> None:
    assert "taube.proto.state" in MODULES
    assert "taube.store.engine" in MODULES
    assert "taube.server.main" in MODULES
    assert len(MODULES) > 30


def test_every_package_has_a_layer() -> None:
    packages = {path.parent.name for path in SRC.glob("*/__init__.py")}
    assert {"proto", "store", "server", "cli", "testing"} <= packages
    assert packages <= set(ALLOWED), "add the new package to ALLOWED"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_one_way(name: str) -> None:
    own = package_of(name)
    if own is None or own not in ALLOWED:  # taube/__init__.py, __main__.py
        return
    for package, via in taube_imports(name).items():
        if package == own:
            continue
        assert package in ALLOWED[own], f"{name} imports {sorted(via)}: {own} ↛ {package}"


def test_proto_imports_nothing_else_from_taube() -> None:
    for name in MODULES:
        if package_of(name) == "proto":
            assert set(taube_imports(name)) <= {"proto"}, name


def test_store_imports_only_proto() -> None:
    for name in MODULES:
        if package_of(name) == "store":
            assert set(taube_imports(name)) <= {"proto", "store"}, name


def test_nothing_but_the_server_imports_the_server() -> None:
    offenders = {
        name: sorted(taube_imports(name)["server"])
        for name in MODULES
        if package_of(name) != "server" and "server" in taube_imports(name)
    }
    assert offenders == {}


def test_the_server_is_loaded_by_name_only_where_documented() -> None:
    for name, path in MODULES.items():
        if package_of(name) == "server":
            continue
        dynamic = {m for m in dynamic_imports_of(path) if package_of(m) == "server"}
        assert dynamic == DYNAMIC_SERVER_IMPORTS.get(name, set()), name
    assert dynamic_imports_of(MODULES["taube.cli.main"]) == {"taube.server.main"}


def test_proto_is_pure() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for name, path in MODULES.items():
        if package_of(name) != "proto":
            continue
        for target in imports_of(name, path):
            top = target.split(".")[0]
            if top == "taube":
                continue
            assert top in stdlib | PROTO_THIRD_PARTY, f"{name} imports {target}"
            assert top not in PROTO_FORBIDDEN_STDLIB, f"{name} imports {target} (I/O)"


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The AST walk finds imports in functions, relative ones and aliases."""
    path = tmp_path / "mod.py"
    path.write_text(
        "import taube.server as s\n"
        "from . import sibling\n"
        "from ..server import app\n"
        "def f():\n"
        "    from taube.server.config import load\n"
        "if False:\n"
        "    import taube.store.engine\n",
        "utf-8",
    )
    found = imports_of("taube.cli.mod", path)
    assert {
        "taube.server",
        "taube.cli",
        "taube.cli.sibling",
        "taube.server.app",
        "taube.server.config",
        "taube.store.engine",
    } <= found
    assert set(taube_imports_in(found)) == {"server", "cli", "store"}


# ---------------------------------------------------------------- import circles


def module_imports(name: str, path: Path, modules: Collection[str] = MODULES) -> set[str]:
    """The modules among ``modules`` that ``name`` imports, one edge per module.

    ``from taube.client.x import y`` is an edge to ``taube.client.x``, or to
    ``taube.client.x.y`` when that is a module; an edge to a package is an
    edge to its ``__init__``. So ``from taube.client import foo`` inside
    ``taube.client.bar`` is an edge to ``foo`` only (Python loads the
    submodule even while ``taube/client/__init__.py`` is still running),
    while ``from taube.client import Client`` there is an edge to the package:
    a circle when ``__init__`` imports ``bar``. Importing ``taube.client.x``
    also runs the package's ``__init__`` first; that is no edge, or every
    package that re-exports its modules would be a circle.
    """
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = from_target(name, is_package, node)
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
    return (found & set(modules)) - {name}


def import_cycles(graph: Mapping[str, Collection[str]]) -> list[list[str]]:
    """The shortest circle through each module that is on one, each once,
    shortest first; a circle starts at its smallest name."""
    cycles: set[tuple[str, ...]] = set()
    for start in graph:
        came_from: dict[str, str | None] = {start: None}
        todo = deque([start])
        last = None
        while todo and last is None:
            here = todo.popleft()
            for there in sorted(graph[here]):
                if there == start:
                    last = here
                    break
                if there in graph and there not in came_from:
                    came_from[there] = here
                    todo.append(there)
        if last is None:
            continue
        path: list[str] = []
        step: str | None = last
        while step is not None:
            path.append(step)
            step = came_from[step]
        path.reverse()
        first = path.index(min(path))
        cycles.add(tuple(path[first:] + path[:first]))
    return [list(cycle) for cycle in sorted(cycles, key=lambda cycle: (len(cycle), cycle))]


def import_graph(under: str) -> dict[str, set[str]]:
    """Every module in ``under`` (a package, or ``taube``) and what it imports there."""
    inside = {name for name in MODULES if name == under or name.startswith(f"{under}.")}
    return {name: module_imports(name, MODULES[name], inside) for name in sorted(inside)}


def show_cycles(cycles: list[list[str]]) -> str:
    return "\n".join(" → ".join([*cycle, cycle[0]]) for cycle in cycles)


@pytest.mark.parametrize("under", ["taube", "taube.client", "taube.server"])
def test_no_import_circles(under: str) -> None:
    cycles = import_cycles(import_graph(under))
    assert not cycles, f"import circles in {under}, shortest first:\n{show_cycles(cycles)}"


def test_the_circle_finder_sees_real_circles_only(tmp_path: Path) -> None:
    """A package that re-exports its modules is no circle; a module that
    imports a name from its own package's ``__init__`` is one, as are
    imports in functions and under ``TYPE_CHECKING``."""
    files = {
        "taube.pkg": ("__init__.py", "from taube.pkg.a import A\nfrom . import b\n"),
        "taube.pkg.a": ("a.py", "from taube.pkg import b, c\nimport taube.pkg.d\n"),
        "taube.pkg.b": ("b.py", "from . import a\n"),
        "taube.pkg.c": ("c.py", "def f():\n    from taube.pkg import A\n"),
        "taube.pkg.d": ("d.py", "if TYPE_CHECKING:\n    from .e import E\n"),
        "taube.pkg.e": ("e.py", "from taube.pkg.d import D\nfrom taube.proto import ids\n"),
    }
    modules = set(files)
    paths = {}
    for name, (filename, text) in files.items():
        paths[name] = tmp_path / filename
        paths[name].write_text(text, "utf-8")
    graph = {name: module_imports(name, path, modules) for name, path in paths.items()}
    assert graph["taube.pkg"] == {"taube.pkg.a", "taube.pkg.b"}
    assert graph["taube.pkg.a"] == {"taube.pkg.b", "taube.pkg.c", "taube.pkg.d"}
    assert graph["taube.pkg.c"] == {"taube.pkg"}
    assert import_cycles(graph) == [
        ["taube.pkg.a", "taube.pkg.b"],
        ["taube.pkg.d", "taube.pkg.e"],
        ["taube.pkg", "taube.pkg.a", "taube.pkg.c"],
    ]
    assert show_cycles([["x", "y"]]) == "x → y → x"


# ---------------------------------------------------------------- public names


def _packages_with_all() -> list[str]:
    return sorted(
        name
        for name, path in MODULES.items()
        if path.name == "__init__.py" and "__all__" in path.read_text("utf-8")
    )


@pytest.mark.parametrize("name", _packages_with_all())
def test_all_matches_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        key
        for key, value in vars(module).items()
        if not key.startswith("_") and not inspect.ismodule(value)
    }
    assert sorted(module.__all__) == sorted(public)
