"""Loading what ``derivcheck check`` needs from the user's own files: functions and parameters."""

from __future__ import annotations

import difflib
import re
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from derivcheck.catalog.registry import import_file
from derivcheck.errors import InputError

_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"  # the first bytes of np.save and np.savez (a zip) files
_SHAPE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+(?:x\d+)*)$")


def load_function(spec: str) -> Any:
    """``path/file.py:name`` -> the function ``name`` defined in that file, imported as ``python file.py`` would
    find its neighbours: the file's folder first on ``sys.path``, so that ``import helpers`` beside it works.

    The module is named after the file (``mine.py`` is ``mine``, as ``import mine`` would name it), not
    ``__main__``, so that a script's ``if __name__ == "__main__":`` block (a training run) does not start.
    """
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise InputError(f"expected FILE.py:FUNCTION; got {spec!r}")
    file = Path(path)
    if not file.is_file():
        raise InputError(f"no file {path!r} (from {spec!r}){_did_you_mean(file.name, _neighbours(file))}")
    module = _import_file(file.resolve(), path)
    fn = getattr(module, name, None)
    if not callable(fn):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise InputError(f"{path!r} defines no function {name!r}{_did_you_mean(name, found)}; "
                         f"it defines: {', '.join(found) or 'none'}")
    return fn


def _import_file(file: Path, shown: str) -> ModuleType:
    """Import ``file`` once, under its stem (or a unique name if another module took the stem)."""
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == file:
            return module  # already imported, by us or by a sibling's import
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # what `python file.py` does; kept, since a function may import on call
    module_name = file.stem if file.stem.isidentifier() and file.stem not in sys.modules else f"derivcheck_user_{abs(hash(file))}"
    return import_file(module_name, file, repr(shown), f"importing {shown!r}")


def _neighbours(file: Path) -> list[str]:
    folder = file.parent if file.parent.is_dir() else None
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".py") if folder is not None else []


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_params(npz: str | None, shapes: list[str], seed: int) -> Any:
    """Parameters from an ``.npz`` or ``.npy`` (never unpickled) or random ones of the ``--shape`` sizes.

    One array is passed as itself, several as a dict keyed by their names.
    """
    if (npz is None) == (not shapes):
        raise InputError("give the parameters either with --params FILE.npz (or .npy) or with --shape NAME=2x3 (not both)")
    arrays = _from_npz(npz) if npz is not None else _from_shapes(shapes, seed)
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


def _from_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` by name, or of an ``.npy`` under its file's stem."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
        if head != _NPY_MAGIC and not head.startswith(_ZIP_MAGIC):
            raise InputError(f"{path!r} is not an .npz or .npy file (it does not start as one); save the parameters "
                             f"with np.savez (several) or np.save (one)")
        loaded = np.load(path, allow_pickle=False)
    except InputError:
        raise
    except FileNotFoundError as exc:
        raise InputError(f"no parameter file {path!r}") from exc
    except ValueError as exc:
        raise InputError(f"{path!r} holds object arrays, which would need pickle to load; derivcheck never "
                         f"unpickles: save plain float arrays with np.savez or np.save") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path!r} is not an .npz or .npy file: {exc}") from exc
    if isinstance(loaded, np.ndarray):
        return {Path(path).stem: loaded}
    with loaded as data:
        try:
            arrays = {k: np.array(data[k]) for k in data.files}
        except ValueError as exc:
            raise InputError(f"{path!r} holds object arrays, which would need pickle to load; derivcheck never "
                             f"unpickles: save plain float arrays with np.savez") from exc
    if not arrays:
        raise InputError(f"{path!r} holds no array")
    return arrays


def _from_shapes(shapes: list[str], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for item in shapes:
        m = _SHAPE.match(item)
        if m is None:
            raise InputError(f"--shape expects NAME=2x3 (a name, '=', sizes joined by 'x'); got {item!r}")
        out[m.group(1)] = rng.standard_normal(tuple(int(s) for s in m.group(2).split("x")))
    return out
