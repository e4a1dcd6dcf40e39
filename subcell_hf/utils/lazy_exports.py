"""Package attributes that import their module on first use, so that importing a package (and `--help`) stays
light: torch and transformers load only when a name that needs them is touched.

    __getattr__, __dir__ = lazy_exports(__name__, {"embed": ".embed", "EmbedConfig": ".config"})

(`subcell_hf/models/__init__.py` has its own copy of these few lines: that folder is uploaded as remote code and
imports nothing from the rest of the package.)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str], on_load: Callable[[], None] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level `__getattr__` and `__dir__` for `package`: `names` maps a public name to the module defining it
    (relative to `package` when it starts with a dot, else absolute). `on_load` runs after each first import."""

    def __getattr__(name: str) -> Any:
        module_name = names.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_name, package), name)
        if on_load is not None:
            on_load()
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__


__all__ = ["lazy_exports"]
