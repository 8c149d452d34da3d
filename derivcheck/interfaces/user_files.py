"""Loading what ``derivcheck check`` needs from the user's own files: functions and parameters."""

from __future__ import annotations

import importlib.util
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from derivcheck.errors import InputError

_SHAPE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+(?:x\d+)*)$")


def load_function(spec: str) -> Any:
    """``path/file.py:name`` -> the function ``name`` defined in that file."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise InputError(f"expected FILE.py:FUNCTION; got {spec!r}")
    file = Path(path)
    if not file.is_file():
        raise InputError(f"no file {path!r} (from {spec!r})")
    module_name = f"derivcheck_user_{abs(hash(file.resolve()))}"
    module = sys.modules.get(module_name)
    if module is None:
        loader = importlib.util.spec_from_file_location(module_name, file)
        if loader is None or loader.loader is None:
            raise InputError(f"{path!r} is not a Python file")
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module
        try:
            loader.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise InputError(f"importing {path!r} raised {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, name, None)
    if not callable(fn):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise InputError(f"{path!r} defines no function {name!r}; it defines: {', '.join(found) or 'none'}")
    return fn


def load_params(npz: str | None, shapes: list[str], seed: int) -> Any:
    """Parameters from an ``.npz`` (never unpickled) or random ones of the ``--shape`` sizes.

    One array is passed as itself, several as a dict keyed by their names.
    """
    if (npz is None) == (not shapes):
        raise InputError("give the parameters either with --params FILE.npz or with --shape NAME=2x3 (not both)")
    arrays = _from_npz(npz) if npz is not None else _from_shapes(shapes, seed)
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


def _from_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.array(data[k]) for k in data.files}
    except FileNotFoundError as exc:
        raise InputError(f"no parameter file {path!r}") from exc
    except ValueError as exc:
        raise InputError(f"{path!r} holds object arrays, which would need pickle to load; derivcheck never "
                         f"unpickles: save plain float arrays with np.savez") from exc
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path!r} is not an .npz file: {exc}") from exc


def _from_shapes(shapes: list[str], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for item in shapes:
        m = _SHAPE.match(item)
        if m is None:
            raise InputError(f"--shape expects NAME=2x3 (a name, '=', sizes joined by 'x'); got {item!r}")
        out[m.group(1)] = rng.standard_normal(tuple(int(s) for s in m.group(2).split("x")))
    return out
