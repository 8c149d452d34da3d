"""Record the arrays a user's function computes, statement by statement, with ``sys.settrace``.

On each 'line' and 'return' event of a traced frame, the float arrays bound to the frame's
locals (and one level into dicts, and ``self``'s attributes) are compared with the previous
event; each new or changed one becomes a ``Record`` of the statement that just ran. A record's
``key`` (call path, statement, name, hit) names the same moment in a re-run, so a re-run can
*edit* a value right after it is computed (rebinding the name to a new array: the user's arrays
are never written) or *capture* the namespace right before a statement runs.
"""

from __future__ import annotations

import copy
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derivcheck.checker.lines.source import SourceIndex, is_user_file

MAX_DICT_ENTRIES = 64  # larger dicts are not containers of a few named arrays; skip them

Key = tuple  # (call path, statement line, name, hit)


@dataclass
class Record:
    index: int
    frame: int  # serial number of the frame instance
    path: tuple  # ((code key, call ordinal), ...) from the outermost traced frame
    file: str
    line: int  # first line of the statement that produced the value
    function: str
    name: str
    hit: int  # how many times before this statement produced this name in this frame
    value: np.ndarray  # a copy, taken right after the statement
    obj: Any  # the live object, kept alive so identity comparisons stay valid
    initial: bool  # present when the frame started (an argument, a closure value, self's state)
    steps: tuple  # ((loop variable, value), ...), innermost first, over the traced stack
    capture: Any = None  # namespace captured before the statement ran (capture runs only)
    returned: bool = False  # a value returned without a name (only a returned dict's entries can be edited)
    argument: bool = False  # a nested call's parameter: a forward value even when the caller never named it

    @property
    def key(self) -> Key:
        return (self.path, self.line, self.name, self.hit)


@dataclass
class Capture:
    line: int
    namespace: dict
    globals: dict


def _parameters(code) -> tuple[str, ...]:
    """The names a function's parameters bind (its first locals)."""
    count = code.co_argcount + code.co_kwonlyargcount
    return code.co_varnames[:count]


def _float_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size > 0


def _same(old: np.ndarray, new: np.ndarray) -> bool:
    return old.shape == new.shape and old.dtype == new.dtype and np.array_equal(old, new, equal_nan=True)


def _setter_for_dict(container: dict, key: Any) -> Callable[[Any], None]:
    return lambda value: container.__setitem__(key, value)


def tracked_arrays(frame) -> dict[str, tuple[np.ndarray, Callable[[Any], None] | None]]:
    """name -> (array, how to rebind it) for the arrays a frame holds where we look for them."""
    found: dict[str, tuple[np.ndarray, Any]] = {}
    local_vars = frame.f_locals
    for name, value in list(local_vars.items()):
        _collect(found, name, value, lambda v, n=name: local_vars.__setitem__(n, v))
    owner = local_vars.get("self")
    attrs = getattr(owner, "__dict__", None)
    if isinstance(attrs, dict) and len(attrs) <= MAX_DICT_ENTRIES:
        for attr, value in list(attrs.items()):
            _collect(found, f"self.{attr}", value, lambda v, o=owner, a=attr: setattr(o, a, v))
    return found


def _collect(found: dict, name: str, value: Any, setter: Callable[[Any], None]) -> None:
    if _float_array(value):
        found[name] = (value, setter)
    elif isinstance(value, dict) and len(value) <= MAX_DICT_ENTRIES:
        for key, entry in list(value.items()):
            if _float_array(entry):
                found[f"{name}[{key!r}]"] = (entry, _setter_for_dict(value, key))


def copy_namespace(local_vars: dict) -> dict:
    """Copies of a frame's locals deep enough that running a statement on them touches nothing."""
    out = {}
    for name, value in local_vars.items():
        if isinstance(value, np.ndarray):
            out[name] = value.copy()
        elif isinstance(value, dict) and len(value) <= MAX_DICT_ENTRIES:
            out[name] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in value.items()}
        elif name == "self" and isinstance(getattr(value, "__dict__", None), dict):
            out[name] = _copy_object(value)
        else:
            out[name] = value
    return out


def _copy_object(obj: Any) -> Any:
    try:
        twin = copy.copy(obj)
        for attr, value in vars(obj).items():
            if isinstance(value, np.ndarray):
                setattr(twin, attr, value.copy())
            elif isinstance(value, dict):
                setattr(twin, attr, {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in value.items()})
        return twin
    except Exception:  # an object that refuses copying is shared as is; a statement rarely writes it
        return obj


@dataclass
class _FrameState:
    serial: int
    path: tuple
    frame: Any
    index: SourceIndex
    parent: _FrameState | None
    last_line: int
    snapshot: dict = field(default_factory=dict)  # name -> (object, copy)
    hits: Counter = field(default_factory=Counter)
    calls: Counter = field(default_factory=Counter)
    capture: Capture | None = None


class Recorder:
    """One traced run of a user function.

    ``edits`` maps a record key to a function old value -> new value, applied right after the
    statement produced it. ``capture_at`` = (call path, statement lines) copies the namespace
    before each run of those statements in that frame; each record made there carries it.
    """

    def __init__(self, edits: dict[Key, Callable] | None = None, capture_at: tuple | None = None,
                 keep_values: bool = True) -> None:
        self.edits = edits or {}
        self.capture_at = capture_at
        self.keep_values = keep_values
        self.records: list[Record] = []
        self.frames_seen = 0
        self._states: dict[int, _FrameState] = {}
        self._root_calls: Counter = Counter()
        self._serial = 0

    def run(self, function: Callable, argument: Any) -> Any:
        previous = sys.gettrace()
        sys.settrace(self._on_call)
        try:
            return function(argument)
        finally:
            sys.settrace(previous)
            self._states.clear()

    def _on_call(self, frame, event, arg):
        if event != "call" or not is_user_file(frame.f_code.co_filename):
            return None
        index = SourceIndex.of(frame.f_code.co_filename)
        parent = self._traced_parent(frame)
        code = frame.f_code
        code_key = (code.co_filename, code.co_firstlineno, code.co_qualname)
        calls = parent.calls if parent else self._root_calls
        ordinal = calls[code_key]
        calls[code_key] += 1
        self._serial += 1
        self.frames_seen += 1
        state = _FrameState(self._serial, (parent.path if parent else ()) + ((code_key, ordinal),),
                            frame, index, parent, code.co_firstlineno)
        self._states[id(frame)] = state
        self._changes(state, frame, initial=True)
        return self._on_event

    def _traced_parent(self, frame) -> _FrameState | None:
        outer = frame.f_back
        while outer is not None:
            state = self._states.get(id(outer))
            if state is not None and state.frame is outer:
                return state
            outer = outer.f_back
        return None

    def _on_event(self, frame, event, arg):
        state = self._states.get(id(frame))
        if state is None or state.frame is not frame:
            return None
        if event in ("line", "return"):
            self._changes(state, frame, initial=False)
        if event == "return":
            self._returned(state, arg)
        if event == "line":
            state.last_line = state.index.statement_start(frame.f_lineno)
            self._maybe_capture(state, frame)
        elif event == "return":
            del self._states[id(frame)]
        return self._on_event

    def _returned(self, state: _FrameState, value: Any) -> None:
        """A returned array (or a returned dict/tuple's arrays) that no local holds is a value too."""
        held = {id(obj) for obj, _ in state.snapshot.values()}
        found: dict = {}
        if isinstance(value, (tuple, list)):
            for i, entry in enumerate(value):
                _collect(found, f"<return>[{i}]", entry, None)
        else:
            _collect(found, "<return>", value, None)
        for name, (obj, setter) in found.items():
            if id(obj) not in held:
                self._record(state, name, obj, setter, initial=False, returned=True)

    def _maybe_capture(self, state: _FrameState, frame) -> None:
        if self.capture_at is None or state.path != self.capture_at[0]:
            return
        if state.last_line in self.capture_at[1]:
            state.capture = Capture(state.last_line, copy_namespace(frame.f_locals), frame.f_globals)

    def _changes(self, state: _FrameState, frame, initial: bool) -> None:
        current = tracked_arrays(frame)
        for name, (obj, setter) in current.items():
            old = state.snapshot.get(name)
            if old is not None and old[0] is obj and _same(old[1], obj):
                continue
            obj = self._record(state, name, obj, setter, initial)
            state.snapshot[name] = (obj, obj.copy())
        for gone in set(state.snapshot) - set(current):
            del state.snapshot[gone]

    def _record(self, state: _FrameState, name: str, obj: np.ndarray, setter, initial: bool,
                returned: bool = False) -> np.ndarray:
        line = state.last_line
        hit = state.hits[(line, name)]
        state.hits[(line, name)] += 1
        record = Record(len(self.records), state.serial, state.path, state.frame.f_code.co_filename,
                        line, state.frame.f_code.co_qualname, name, hit,
                        obj.copy() if self.keep_values else None, obj, initial,
                        self._steps(state), state.capture if not initial else None, returned)
        self.records.append(record)
        # A nested call's argument may be an intermediate no statement names (sigmoid(h1 @ W2 + b2)): it is a
        # value of its own, editable by rebinding the callee's parameter. The outermost frame's are the inputs.
        argument = initial and state.parent is not None and name in _parameters(state.frame.f_code)
        record.argument = argument
        edit = self.edits.get(record.key) if (not initial or argument) else None
        if edit is not None and setter is not None:
            replacement = np.array(edit(obj), dtype=obj.dtype)
            setter(replacement)  # the name now holds our array; the user's array is untouched
            return replacement
        return obj

    @staticmethod
    def _steps(state: _FrameState) -> tuple:
        steps = []
        walker: _FrameState | None = state
        while walker is not None:
            for target in walker.index.loops_at.get(walker.last_line, ()):
                value = walker.frame.f_locals.get(target)
                if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                    steps.append((target, int(value)))
            walker = walker.parent
        return tuple(steps)
