"""The parameter space: named float64 blocks, flatten/unflatten, inner products.

A user's parameters are one array, a dict of arrays, a list/tuple of arrays, or any nesting of
dicts, lists, tuples, named tuples and dataclasses with arrays at the leaves; inside derivcheck
they are always an ordered dict ``name -> float64 array`` so that a report can say ``dw[3, 7]``
(or ``dencoder.w[3, 7]``) rather than "argument 1".

The tree utility is small and ours: five node kinds cover what users pass, and a dependency
such as ``optree`` would add a compiled package for no kind we need.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from derivcheck.numeric.blocks import Blocks

from derivcheck.checker.diagnosis.shapes import shape_hint
from derivcheck.errors import GradientShapeError, InputError, IntegerDtypeError


@dataclass(frozen=True)
class TreeDef:
    """The shape of a nested structure: a node's kind, what rebuilds it, its keys and its children."""

    kind: str  # "leaf", "dict", "list", "tuple", "namedtuple" or "dataclass"
    template: Any = None  # the mapping or named-tuple type, or the dataclass instance copied on rebuild
    keys: tuple[Any, ...] = ()
    children: tuple[TreeDef, ...] = ()


_LEAF = TreeDef("leaf")


def _node(tree: Any) -> tuple[str, Any, tuple[Any, ...], list[Any]]:
    """(kind, template, keys, children) of one node; anything that is no container is a leaf."""
    if isinstance(tree, Mapping):
        return "dict", type(tree), tuple(tree), list(tree.values())
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return "namedtuple", type(tree), tuple(tree._fields), list(tree)
    if isinstance(tree, (list, tuple)) and not (tree and all(isinstance(v, (int, float, complex, np.number)) for v in tree)):
        # (a list of plain numbers is one array-like leaf, named as such in the error that asks for an array)
        return ("list" if isinstance(tree, list) else "tuple"), None, tuple(range(len(tree))), list(tree)
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        names = tuple(f.name for f in dataclasses.fields(tree))
        return "dataclass", tree, names, [getattr(tree, n) for n in names]
    return "leaf", None, (), []


def _path(prefix: str | None, kind: str, key: Any, what: str) -> str:
    """``w``, ``enc.w``, ``params[0]``, ``layers[1].b``: how a leaf is named in a report."""
    if kind in ("list", "tuple"):
        return f"{what if prefix is None else prefix}[{key}]"
    return str(key) if prefix is None else f"{prefix}.{key}"


def tree_flatten(tree: Any, what: str = "params", prefix: str | None = None) -> tuple[list[tuple[str, Any]], TreeDef]:
    """The leaves of a nested structure with their names, and the structure to rebuild it.

    >>> leaves, d = tree_flatten({"enc": {"w": "W", "b": "B"}, "out": ["V"]})
    >>> [name for name, _ in leaves], tree_unflatten(d, [1, 2, 3])
    (['enc.w', 'enc.b', 'out[0]'], {'enc': {'w': 1, 'b': 2}, 'out': [3]})
    """
    kind, template, keys, values = _node(tree)
    if kind == "leaf":
        return [(what if prefix is None else prefix, tree)], _LEAF
    leaves: list[tuple[str, Any]] = []
    children = []
    for key, value in zip(keys, values):
        sub, child = tree_flatten(value, what, _path(prefix, kind, key, what))
        leaves += sub
        children.append(child)
    return leaves, TreeDef(kind, template, keys, tuple(children))


def tree_unflatten(d: TreeDef, leaves: Sequence[Any] | Iterator[Any]) -> Any:
    """Rebuild the structure ``d`` with ``leaves`` in the order ``tree_flatten`` gave them."""
    it = iter(leaves)
    return _rebuild(d, it)


def _rebuild(d: TreeDef, it: Iterator[Any]) -> Any:
    if d.kind == "leaf":
        return next(it)
    values = [_rebuild(c, it) for c in d.children]
    if d.kind == "dict":
        pairs = dict(zip(d.keys, values))
        try:
            return pairs if d.template is dict else d.template(pairs)
        except TypeError:  # a Mapping that cannot be built from pairs: a plain dict is the closest
            return pairs
    if d.kind == "namedtuple":
        return d.template(*values)
    if d.kind == "dataclass":
        out = copy.copy(d.template)
        for key, value in zip(d.keys, values):
            object.__setattr__(out, key, value)  # frozen dataclasses too
        return out
    return values if d.kind == "list" else tuple(values)


def tree_match(d: TreeDef, value: Any, source: str, path: str | None = None) -> list[Any]:
    """The leaves of ``value`` read along ``d``: a structural difference is an error naming where."""
    if d.kind == "leaf":
        return [value]
    where = f" at {path!r}" if path is not None else ""
    if d.kind in ("list", "tuple"):
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or len(value) != len(d.keys):
            got = f"{type(value).__name__} of length {len(value)}" if isinstance(value, Sequence) else type(value).__name__
            raise GradientShapeError(f"{source} returned {got}{where}; expected a {d.kind} of {len(d.keys)} entries")
        items = list(value)
    elif isinstance(value, Mapping):
        missing, extra = [k for k in d.keys if k not in value], [k for k in value if k not in d.keys]
        if missing or extra:
            raise GradientShapeError(f"{source} returned a dict{where} with keys {list(value)}; expected exactly "
                                     f"the parameters' keys {list(d.keys)}")
        items = [value[k] for k in d.keys]
    elif d.kind in ("namedtuple", "dataclass") and all(hasattr(value, k) for k in d.keys):
        items = [getattr(value, k) for k in d.keys]
    else:
        raise GradientShapeError(f"{source} returned {type(value).__name__}{where}; expected a {d.kind} with "
                                 f"keys {list(d.keys)}")
    out: list[Any] = []
    for key, child, item in zip(d.keys, d.children, items):
        out += tree_match(child, item, source, _path(path, d.kind, key, "params"))
    return out


def _is_flat(params: Any) -> bool:
    """A plain dict, list or tuple of arrays: the kinds read without the tree (their messages are pinned)."""
    if isinstance(params, tuple) and hasattr(params, "_fields"):
        return False
    values = params.values() if isinstance(params, Mapping) else params
    return all(_node(v)[0] == "leaf" for v in values)


@dataclass(frozen=True)
class ParamSpace:
    """Shapes, dtypes and the user's container kind of a set of parameters."""

    kind: str  # "array", "dict", "list", "tuple", or "tree" (nested, named tuples, dataclasses)
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[np.dtype, ...]
    keys: tuple[Any, ...]
    tree: TreeDef | None = None  # the structure, for kind "tree"

    @classmethod
    def of(cls, params: Any, what: str = "params") -> ParamSpace:
        """Describe ``params``; raise a clear error for anything that is not float arrays."""
        tree = None
        if isinstance(params, np.ndarray):
            kind, keys, arrays = "array", (None,), [params]
            names: list[str] = [what]
        elif isinstance(params, (Mapping, list, tuple)) and params and not _is_flat(params) or (
                dataclasses.is_dataclass(params) and not isinstance(params, type)):
            kind, (leaves, tree) = "tree", tree_flatten(params, what)
            if not leaves:
                raise InputError(f"{what} holds no array; expected at least one")
            names, arrays = [n for n, _ in leaves], [a for _, a in leaves]
            keys = tuple(range(len(names)))
            if len(set(names)) != len(names):
                raise InputError(f"{what} has two leaves named alike ({sorted(n for n in names if names.count(n) > 1)}): "
                                 f"rename a key so that each array has its own name")
        elif isinstance(params, Mapping):
            if not params:
                raise InputError(f"{what} is an empty dict; expected at least one array")
            kind, keys, arrays = "dict", tuple(params), list(params.values())
            names = [str(k) for k in params]
        elif isinstance(params, (list, tuple)):
            if not params:
                raise InputError(f"{what} is an empty {type(params).__name__}; expected at least one array")
            kind = "list" if isinstance(params, list) else "tuple"
            keys, arrays = tuple(range(len(params))), list(params)
            names = [f"{what}[{i}]" for i in range(len(params))]
        else:
            raise InputError(
                f"{what} must be a numpy array, or a dict, list, tuple, named tuple or dataclass of arrays "
                f"(nested as deep as you like); got {type(params).__name__}"
            )
        for name, a in zip(names, arrays):
            if not isinstance(a, np.ndarray):
                raise InputError(f"{what} entry {name!r} must be a numpy array; got {type(a).__name__}")
            if not np.issubdtype(a.dtype, np.floating):
                raise IntegerDtypeError(
                    f"parameter {name!r} has dtype {a.dtype}; a gradient check needs a floating "
                    f"dtype (float64 or float32). Cast it with .astype(float), or keep integer data "
                    f"(labels, indices) out of the parameters by closing over it in the loss."
                )
            if a.size == 0:
                raise InputError(f"parameter {name!r} is empty (shape {a.shape}); nothing to check")
            if not np.all(np.isfinite(a)):
                raise InputError(f"parameter {name!r} contains NaN or infinity; expected finite values")
        return cls(kind, tuple(names), tuple(a.shape for a in arrays), tuple(a.dtype for a in arrays), keys, tree)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(np.prod(s, dtype=np.int64)) for s in self.shapes)

    def _values(self, params: Any) -> list[Any]:
        if self.kind == "tree":
            return [v for _, v in tree_flatten(params)[0]]
        return [params] if self.kind == "array" else [params[k] for k in self.keys]

    def blocks(self, params: Any, dtype: Any = np.float64) -> Blocks:
        """Fresh copies of the user's arrays as an ordered dict, cast to ``dtype``."""
        return {n: np.array(v, dtype=dtype, copy=True) for n, v in zip(self.names, self._values(params))}

    def arrays(self, params: Any) -> dict[str, np.ndarray]:
        """The user's own arrays (no copies), by block name: what in-place mode perturbs."""
        return dict(zip(self.names, self._values(params)))

    def to_user(self, blocks: Blocks) -> Any:
        """Rebuild the user's container from blocks (arrays are passed as given)."""
        values = [blocks[n] for n in self.names]
        if self.tree is not None:
            return tree_unflatten(self.tree, values)
        if self.kind == "array":
            return values[0]
        if self.kind == "dict":
            return dict(zip(self.keys, values))
        return list(values) if self.kind == "list" else tuple(values)

    def gradient_blocks(self, grad: Any, source: str = "grad", keep: bool = False) -> Blocks:
        """Read the user's gradient into blocks, naming any structural or shape mistake; float64 copies, or
        (``keep``: a float64 array no one else holds) the array itself, made read-only."""
        if self.tree is not None:
            values = dict(zip(self.names, tree_match(self.tree, grad, source)))
        elif self.kind == "array":
            if isinstance(grad, (list, tuple)) and len(grad) == 1:
                grad = grad[0]
            if isinstance(grad, Mapping):
                raise GradientShapeError(
                    f"{source} returned a dict with keys {list(grad)}; expected one array of shape {self.shapes[0]} "
                    f"(the parameters are one array)"
                )
            values = {self.names[0]: grad}
        elif self.kind == "dict":
            if not isinstance(grad, Mapping):
                raise GradientShapeError(
                    f"{source} returned {type(grad).__name__}; expected a dict with keys {list(self.keys)}"
                )
            missing = [k for k in self.keys if k not in grad]
            extra = [k for k in grad if k not in self.keys]
            if missing or extra:
                parts = ([f"without key(s) {missing}"] if missing else []) + ([f"with extra key(s) {extra}"] if extra else [])
                raise GradientShapeError(
                    f"{source} returned a dict {' and '.join(parts)}; expected exactly the parameters' keys {list(self.keys)}"
                )
            values = {n: grad[k] for n, k in zip(self.names, self.keys)}
        else:
            if not isinstance(grad, Sequence) or isinstance(grad, (str, bytes)) or len(grad) != len(self.keys):
                got = f"{type(grad).__name__} of length {len(grad)}" if isinstance(grad, Sequence) else type(grad).__name__
                if isinstance(grad, Mapping):
                    got = f"a dict with keys {list(grad)}"
                raise GradientShapeError(
                    f"{source} returned {got}; expected a {self.kind} of {len(self.keys)} arrays"
                )
            values = dict(zip(self.names, grad))
        out: Blocks = {}
        for name, shape in zip(self.names, self.shapes):
            g = values[name]
            if g is None:
                raise GradientShapeError(f"{source} returned None for parameter {name!r}; expected shape {shape}")
            try:
                arr = np.asarray(g)
            except Exception as exc:  # noqa: BLE001 - anything the user returned
                raise GradientShapeError(f"{source} for {name!r} is not array-like: {exc}") from exc
            if arr.shape != shape:
                hint = shape_hint(arr.shape, shape)
                raise GradientShapeError(
                    f"gradient for {name!r} has shape {arr.shape}; expected {shape} (the parameter's shape)"
                    + (f": {hint}" if hint else ""),
                    finding=hint,
                )
            if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
                raise GradientShapeError(f"gradient for {name!r} has dtype {arr.dtype}; expected a real float array")
            if keep and arr is grad and arr.dtype == np.float64:
                arr.flags.writeable = False
                out[name] = arr
            else:
                out[name] = arr.astype(np.float64, copy=True)
        return out


def flat_index(shape: tuple[int, ...], flat: int) -> tuple[int, ...]:
    """Turn a flat index into the array index a user would write."""
    return tuple(int(i) for i in np.unravel_index(int(flat), shape)) if shape else ()
