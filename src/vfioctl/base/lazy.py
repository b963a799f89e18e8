"""Lazy re-exports: a package face whose names are loaded from the modules that own them on
first use (PEP 562 ``__getattr__``), so importing the face costs nothing at start-up."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping


def lazy_exports(package: str, namespace: MutableMapping[str, object],
                 exports: Mapping[str, str | tuple[str, str]],
                 modules: tuple[str, ...] = ()) -> Callable[[str], object]:
    """The ``__getattr__`` of *package*: a name of *exports* (``name: module``, or
    ``name: (module, attribute)`` where the module calls it otherwise) is imported from its
    module and kept in *namespace* (the package's globals), so it is looked up once; a name of
    *modules* is the submodule ``package.name``; any other name is an AttributeError."""

    def __getattr__(name: str) -> object:
        if name in modules:
            return importlib.import_module(f"{package}.{name}")
        try:
            where = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module, attr = (where, name) if isinstance(where, str) else where
        value = getattr(importlib.import_module(module), attr)
        namespace[name] = value
        return value

    return __getattr__
