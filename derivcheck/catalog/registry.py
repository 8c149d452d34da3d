"""The one owner of the catalog's tables: layers, models and input domains. Declarations register
themselves here; nothing here knows a layer."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from derivcheck.catalog.domains import Sampler
    from derivcheck.catalog.compose import Sequential
    from derivcheck.catalog.declarations import Layer

LAYERS: dict[str, Layer] = {}
MODELS: dict[str, Sequential] = {}
SAMPLERS: dict[str, Sampler] = {}  # input domains: where a layer's input values are drawn from
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
                importlib.import_module(f"{pkg.__name__}.{info.name}")


def list_layers() -> list[str]:
    """Names of all registered layers, in declaration order."""
    _load()
    return list(LAYERS)


def get_layer(name: str) -> Layer:
    """The layer called ``name``; a clear error lists the known names otherwise."""
    _load()
    if name not in LAYERS:
        from derivcheck.errors import InputError

        raise InputError(f"no layer named {name!r}; known layers: {', '.join(LAYERS)}")
    return LAYERS[name]


def list_models() -> list[str]:
    """Names of all registered models (chains of layers), in declaration order."""
    _load()
    return list(MODELS)


def get_model(name: str) -> Sequential:
    """The model called ``name``, whatever was imported before; a clear error lists the known names otherwise."""
    _load()
    if name not in MODELS:
        from derivcheck.errors import InputError

        raise InputError(f"no model named {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]
