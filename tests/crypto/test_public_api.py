"""The curated namespace of ``taube.crypto``, its error tree, and its reach."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import taube.crypto
from taube.crypto import errors

MODULES = sorted(
    f"taube.crypto.{info.name}" for info in pkgutil.iter_modules(taube.crypto.__path__)
)


def test_all_matches_the_public_names() -> None:
    public = {
        name
        for name, value in vars(taube.crypto).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert sorted(taube.crypto.__all__) == sorted(public)
    assert len(taube.crypto.__all__) == len(set(taube.crypto.__all__))


def test_every_name_in_all_is_importable_and_documented() -> None:
    for name in taube.crypto.__all__:
        value = getattr(taube.crypto, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("taube.crypto."), name
            assert inspect.getdoc(value), f"{name} has no docstring"
    namespace: dict[str, object] = {}
    exec("from taube.crypto import *", namespace)
    assert set(taube.crypto.__all__) <= set(namespace)


def test_every_error_is_a_crypto_error_and_drawn_in_the_tree() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, Exception)
    ]
    assert errors.CryptoError in classes
    assert len(classes) >= 8
    tree = errors.__doc__ or ""
    for cls in classes:
        assert issubclass(cls, errors.CryptoError)
        assert re.search(rf"\b{cls.__name__}\b", tree), f"{cls.__name__} missing from the tree"
        assert getattr(taube.crypto, cls.__name__) is cls
    assert issubclass(errors.WrongRecoveryCode, errors.DecryptionFailed)


@pytest.mark.parametrize("name", MODULES)
def test_modules_import_and_have_docstrings(name: str) -> None:
    module = importlib.import_module(name)
    assert len(module.__doc__ or "") > 100, name


NETWORK = {"socket", "ssl", "http", "urllib", "aiohttp", "asyncio.streams", "requests", "httpx"}


@pytest.mark.parametrize("name", MODULES)
def test_no_network_and_no_layer_above(name: str) -> None:
    """``taube.crypto`` uses ``taube.proto`` and libraries only, and no network."""
    path = importlib.import_module(name).__file__
    assert path is not None
    tree = ast.parse(Path(path).read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            targets = [node.module or ""]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            assert target.split(".")[0] not in NETWORK, target
            assert target not in NETWORK, target
            if target.startswith("taube."):
                assert target.split(".")[1] in {"proto", "crypto"}, target
