"""The one owner of the catalog's tables: layers, models and input domains. Declarations register
themselves here; nothing here knows a layer."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from derivcheck.errors import DerivcheckError, InputError

if TYPE_CHECKING:
    from derivcheck.catalog.domains import Sampler
    from derivcheck.catalog.compose import Sequential
    from derivcheck.catalog.declarations import Layer

LAYERS: dict[str, Layer] = {}
MODELS: dict[str, Sequential] = {}
SAMPLERS: dict[str, Sampler] = {}  # input domains: where a layer's input values are drawn from
# A layer file that could not be loaded -> why. It is skipped, so one slip never stops the rest of the catalog;
# the reason is kept here to be shown once, and named when a layer it may have declared is asked for.
SKIPPED: dict[str, str] = {}
_loaded = False


def register(layer: Layer) -> Layer:
    """Add a layer to the table (called by ``def_layer``)."""
    if layer.name in LAYERS and LAYERS[layer.name] is not layer:
        raise ValueError(f"a layer named {layer.name!r} is already registered")
    LAYERS[layer.name] = layer
    return layer


def register_model(model: Sequential) -> Sequential:
    """Add a model to the table (called by ``def_model``)."""
    if model.name in MODELS and MODELS[model.name] is not model:
        raise ValueError(f"a model named {model.name!r} is already registered")
    MODELS[model.name] = model
    return model


def register_domain(name: str, sampler: Sampler) -> Sampler:
    """Add an input domain to the table (called by ``def_domain``)."""
    if name in SAMPLERS and SAMPLERS[name] is not sampler:
        raise ValueError(f"a domain named {name!r} is already registered")
    SAMPLERS[name] = sampler
    return sampler


def _load() -> None:
    # Every module in derivcheck/catalog/layers registers its layers on import: adding a layer
    # is adding a file, with no list to edit.
    # Models (derivcheck/catalog/models) are chains of layers and load after them. The registry is the one
    # owner of the catalog: every lookup of a layer or a model loads both tables first.
    global _loaded
    if _loaded:
        return
    _loaded = True
    import derivcheck.catalog.layers as layers
    import derivcheck.catalog.models as models

    for pkg in (layers, models):
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                name = f"{pkg.__name__}.{info.name}"
                _skip_if_broken(str(Path(pkg.__path__[0]) / f"{info.name}.py"), importlib.import_module, name)


def _skip_if_broken(file: str, load, *args) -> None:  # noqa: ANN001 - a loader and its arguments
    """Run ``load(*args)``; a failure is kept in SKIPPED with the file named, and the catalog goes on."""
    try:
        load(*args)
    except (Exception, SystemExit) as exc:  # SystemExit: a layer file that exits at import must not end the command
        text = str(exc)
        SKIPPED[file] = text if file in text else f"{file}: {type(exc).__name__}: {text}"


def load_layer_file(path: str | Path) -> None:
    """Import a user's layer file (its ``def_layer`` calls register its layers); a clear error if it is broken.

    Examples
    --------
    >>> load_layer_file("no_such_file.py")
    Traceback (most recent call last):
    ...
    derivcheck.errors.InputError: no layer file 'no_such_file.py'
    """
    _load()
    file = Path(path)
    if not file.is_file():
        raise InputError(f"no layer file {str(path)!r}")
    name = f"derivcheck_user_layers_{file.stem}_{abs(hash(str(file.resolve())))}"
    if name in sys.modules:
        return  # loaded already: its layers are in the table
    import_file(name, file, f"layer file {str(path)!r}", f"{file}: importing the layer file", reraise=(DerivcheckError,))


def import_file(name: str, file: Path, shown: str, failed: str,
                reraise: tuple[type[BaseException], ...] = ()) -> ModuleType:
    """Run ``file`` as the module ``name`` (registered in ``sys.modules`` only if it imports): a user's layer file or
    loss file. ``shown`` names it where it is no Python file, ``failed`` starts the error when importing raises;
    exceptions in ``reraise`` pass unchanged (a layer file's declaration slip is already a named error).
    SystemExit is caught too: a script that exits at import must not end the command."""
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InputError(f"{shown} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except reraise:
        del sys.modules[name]
        raise
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise InputError(f"{failed} raised {type(exc).__name__}: {exc}") from exc
    return module


def load_layer_files(paths: list[str]) -> dict[str, str]:
    """Load each user layer file (a folder: its ``*.py``); a broken one is skipped and kept in SKIPPED, never raised."""
    files = [f for p in paths for f in (sorted(Path(p).glob("*.py")) if Path(p).is_dir() else [Path(p)])]
    for file in files:
        _skip_if_broken(str(file), load_layer_file, file)
    return dict(SKIPPED)


def skipped_note() -> str:
    """One line per layer file that was skipped, with why ('' when none was)."""
    return "".join(f"skipped layer file: {why}\n" for why in SKIPPED.values())


def list_layers() -> list[str]:
    """Names of all registered layers, in declaration order."""
    _load()
    return list(LAYERS)


def get_layer(name: str) -> Layer:
    """The layer called ``name``; a clear error lists the known names otherwise."""
    _load()
    if name not in LAYERS:
        raise InputError(f"no layer named {name!r}; known layers: {', '.join(LAYERS)}"
                         + (f"; skipped layer files, which may declare it: {', '.join(SKIPPED)}" if SKIPPED else ""))
    return LAYERS[name]


def list_models() -> list[str]:
    """Names of all registered models (chains of layers), in declaration order."""
    _load()
    return list(MODELS)


def get_model(name: str) -> Sequential:
    """The model called ``name``, whatever was imported before; a clear error lists the known names otherwise."""
    _load()
    if name not in MODELS:
        raise InputError(f"no model named {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]
