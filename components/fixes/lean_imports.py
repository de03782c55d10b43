"""lightning-app 2.3.2 imports PyTorch into every app process, where PyTorch is installed, for nothing.

``lightning_app/__init__`` imports its model-serving components, and their ``types/image.py`` does
``from torch import Tensor`` whenever torch is installed, for a type annotation. Every process of a
Sweeps app imports lightning_app (the CLI and its flow, each work, the page's), so where PyTorch is
installed (every PyTorch Lightning user's environment) each of them pays PyTorch's import: about a
second of CPU and ~300 MB, before the first trial can start. Sweeps serves no model; its trials run
in processes of their own (``sweeps.forkserver``), which import torch when the script does.

The fix tells lightning-app that torch and torchvision are absent: its ``utilities.imports`` module
is loaded as it is, then its two checks answer False. It must be in place before lightning_app is
first imported in the process, so ``components`` applies it first; the ``lightning`` command
imports ``components`` before lightning_app, and so do the works' processes (they start from it).
Started through ``lightning_app run app`` instead, the CLI has imported torch already.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

from components.fixes import Fix

#: The module whose checks lightning-app's imports consult.
IMPORTS_MODULE = "lightning_app.utilities.imports"
#: Its checks that, answering True, make lightning-app import PyTorch.
CHECKS = ("_is_torch_available", "_is_torchvision_available")


def _absent() -> bool:
    return False


def _hide_torch(module: ModuleType) -> None:
    for check in CHECKS:
        setattr(module, check, _absent)


class _Loader(importlib.abc.Loader):
    """Loads the module as its own loader does, then hides torch from it."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _hide_torch(module)

    def __getattr__(self, name: str) -> Any:  # get_source (tracebacks), get_filename...
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != IMPORTS_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def _patch() -> None:
    if IMPORTS_MODULE in sys.modules:  # imported already (its importer imported torch, if it could)
        _hide_torch(sys.modules[IMPORTS_MODULE])
    elif not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


FIXES = (
    Fix(
        "lightning-app",
        "2.3.2",
        "every app process imports PyTorch where it is installed (a serving type's annotation): ~1 s and ~300 MB each",
        _patch,
    ),
)
