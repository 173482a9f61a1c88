"""Every exception class of the hub and its connectors ends in ``Error`` and is a ``HubError`` (issue 12:
one tree, so that each door maps every error the same way); private control-flow signals (a leading
underscore) never leave their module and are exempt."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

from hub.errors import HubError

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> list[str]:
    names = []
    for package in ("hub", "connectors"):
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            if not info.name.endswith("__main__") and ".migrations" not in info.name:
                names.append(info.name)
    return names


def _exception_classes() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == name and not obj.__name__.startswith("_"):
                found[f"{name}.{obj.__qualname__}"] = obj
    return list(found.values())


def test_the_walk_finds_the_known_errors() -> None:
    names = {c.__name__ for c in _exception_classes()}
    assert {
        "HubError",
        "AccessDeniedError",
        "InvalidTokenError",
        "FatalError",
        "PageUnreadableError",
    } <= names


@pytest.mark.parametrize("cls", _exception_classes(), ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_each_error_ends_in_error_and_is_a_hub_error(cls: type[BaseException]) -> None:
    assert cls.__name__.endswith("Error"), f"{cls.__module__}.{cls.__qualname__} should end in Error"
    assert issubclass(cls, HubError), f"{cls.__module__}.{cls.__qualname__} should be in the HubError tree"
