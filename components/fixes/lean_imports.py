"""What lightning-app 2.3.2 imports into every app process for nothing: PyTorch, and a cloud client.

Every process of a Sweeps app imports lightning_app (the CLI and its flow, each work, the page's),
so whatever it imports delays the first trial and the page.

- ``lightning_app/__init__`` imports its model-serving components, and their ``types/image.py``
  does ``from torch import Tensor`` whenever torch is installed, for a type annotation: about a
  second of CPU and ~300 MB in each process where PyTorch is installed (every PyTorch Lightning
  user's environment). Sweeps serves no model; its trials run in processes of their own
  (``sweeps.forkserver``), which import torch when the script does. The fix tells lightning-app
  that torch and torchvision are absent: its ``utilities.imports`` module is loaded as it is,
  then its two checks answer False.
- lightning-app's modules import names from ``lightning_cloud.openapi`` (Lightning's cloud, shut
  down) at their top, and that package's ``__init__`` (and its ``api`` and ``models``) imports
  every one of its ~600 modules: ~0.3 s; the client's top package (and its ``source_code``) imports
  its uploader of source code (rich's progress bars, ~0.2 s). The fix loads those packages' ``__init__``
  lazily: each is nothing but ``from <module> import <names>`` statements, and a name's module is
  imported when the name is first used (never, for a local app).
- ``lightning_app/__init__`` asks whether ``lightning_app.components.demo`` exists, which imports
  ``lightning_app.components``, whose ``__init__`` imports every component lightning-app ships: its
  model servers (aiohttp, PIL), its database client (sqlmodel), its multi-node trainers. ~0.3 s in
  the app's main process and in the page's; Sweeps uses one of them, ``TracerPythonScript``. The
  same lazy ``__init__`` fixes it.

All must be in place before lightning_app is first imported in the process, so ``components``
applies them first; the ``lightning`` command imports ``components`` before lightning_app, and so
do the works' processes (they start from it). Started through ``lightning_app run app`` instead,
the CLI has imported them already.
"""

from __future__ import annotations

import ast
import importlib
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


class _Wrapped(importlib.abc.Loader):
    """A module's own loader, but for how the module is executed."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def __getattr__(self, name: str) -> Any:  # get_source (tracebacks), get_filename...
        return getattr(self._loader, name)


class _WithoutTorch(_Wrapped):
    """Loads the module as its own loader does, then hides torch from it."""

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _hide_torch(module)


#: The packages whose ``__init__`` imports every module of the cloud client.
CLOUD_CLIENT = (
    "lightning_cloud",
    "lightning_cloud.source_code",
    "lightning_cloud.openapi",
    "lightning_cloud.openapi.api",
    "lightning_cloud.openapi.models",
)
#: lightning-app's package of components, whose ``__init__`` imports every one of them.
LIGHTNING_COMPONENTS = ("lightning_app.components",)


def _names_imported(source: str) -> tuple[dict[str, tuple[str, str]], list[str] | None] | None:
    """``({name: (module, name there)}, __all__)`` for a module made only of ``from <module> import
    <names>`` statements, besides its docstring and a literal ``__all__`` (None if it has none);
    None for any other module, which is then loaded as it is."""
    names, declared = {}, None
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
            continue
        if isinstance(statement, ast.ImportFrom) and statement.level == 0 and statement.names[0].name != "*":
            names.update({alias.asname or alias.name: (statement.module, alias.name) for alias in statement.names})
        elif isinstance(statement, ast.Assign) and [ast.unparse(t) for t in statement.targets] == ["__all__"]:
            try:
                declared = list(ast.literal_eval(statement.value))
            except ValueError:  # computed: only running the module tells
                return None
        elif not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)):  # the docstring
            return None
    return names, declared


class _LazyInit(_Wrapped):
    """Loads a package of ``from <module> import <names>`` statements so that each name is imported when used."""

    def exec_module(self, module: ModuleType) -> None:
        source = self._loader.get_source(module.__name__)
        found = _names_imported(source)
        if found is None:  # not such a package (any more): as it is
            self._loader.exec_module(module)
            return
        names, declared = found

        def __getattr__(name: str) -> Any:
            if name not in names:
                raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
            origin, original = names[name]
            value = getattr(importlib.import_module(origin), original)
            setattr(module, name, value)
            return value

        module.__getattr__ = __getattr__
        module.__all__ = declared if declared is not None else list(names)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``modules`` as Python does, and has ``wrapper`` load them."""

    def __init__(self, modules: tuple[str, ...], wrapper: type[importlib.abc.Loader]) -> None:
        self.modules, self.wrapper = modules, wrapper

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in self.modules:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = self.wrapper(spec.loader)
        return spec


def _install(finder: _Finder) -> None:
    if not any(isinstance(f, _Finder) and f.modules == finder.modules for f in sys.meta_path):
        sys.meta_path.insert(0, finder)


def _without_torch() -> None:
    if IMPORTS_MODULE in sys.modules:  # imported already (its importer imported torch, if it could)
        _hide_torch(sys.modules[IMPORTS_MODULE])
    else:
        _install(_Finder((IMPORTS_MODULE,), _WithoutTorch))


def _lazy_cloud_client() -> None:
    _install(_Finder(CLOUD_CLIENT, _LazyInit))


def _lazy_components() -> None:
    _install(_Finder(LIGHTNING_COMPONENTS, _LazyInit))


FIXES = (
    Fix(
        "lightning-app",
        "2.3.2",
        "every app process imports PyTorch where it is installed (a serving type's annotation): ~1 s and ~300 MB each",
        _without_torch,
    ),
    # lightning-app 2.3.2 requires exactly this release.
    Fix(
        "lightning-cloud",
        "0.5.70",
        "every app process imports the ~600 modules of Lightning's cloud client, for names it never uses: ~0.3 s each",
        _lazy_cloud_client,
    ),
    Fix(
        "lightning-app",
        "2.3.2",
        "every app process imports every component lightning-app ships (model servers, a database client): ~0.3 s each",
        _lazy_components,
    ),
)
