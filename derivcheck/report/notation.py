"""The one notation of every printed derivation: its glyphs, in Unicode or ASCII, and in LaTeX.

Text is Unicode math (``Xᵀ``, ``⊙``, ``⊘``, ``σ``, ``‖x‖``, ``Σ_n``, Greek letters, ``x²``) where the
stream it is written to can encode it, and ASCII otherwise (``X^T``, ``*``, ``/``, ``sigmoid``,
``norm2(x)``, ``sum_n``, ``x^2``). Both forms are input the matrix language parses back. Which one
is used is decided here and nowhere else: by :func:`use` where a caller chose, else by the
encoding of ``sys.stdout``. Ones vectors carry their length, ``1_N``: a bare ``1ᵀ`` would be of
length 1 on one line and D on the next. LaTeX macros live here too, so that text and LaTeX
cannot drift apart.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Glyphs:
    """The text of each notational element; ``unicode`` says which of the two sets this is.

    Examples
    --------
    >>> UNICODE.transpose, ASCII.transpose, ASCII.odot
    ('ᵀ', '^T', '*')
    """

    unicode: bool
    transpose: str
    inverse: str
    inverse_transpose: str
    odot: str
    oslash: str
    elementwise_power: str  # X^∘2: the entrywise power of a matrix, never a matrix power
    sigmoid: str
    sum: str
    partial: str
    sqrt: str
    le: str
    ge: str
    ne: str

    def ones(self, size: object) -> str:
        """A ones vector with its length, ``1_N``: no Unicode subscript exists for capitals, so both sets agree."""
        return f"1_{size}"

    def identity(self, size: object) -> str:
        return f"I_{size}"

    def superscript(self, exponent: int) -> str | None:
        """``²`` for a small integer power in Unicode; None where the power is written ``^k``."""
        if not self.unicode or not 2 <= exponent <= 9:
            return None
        return _SUPERSCRIPT[str(exponent)]

    def greek(self, name: str, fold_case: bool = False) -> str:
        """``lam`` -> ``λ``, ``gamma`` -> ``γ`` in Unicode (with ``fold_case``, ``GAMMA`` too); the name in ASCII."""
        if not self.unicode:
            return name
        if name in GREEK_TEXT:
            return GREEK_TEXT[name]
        return GREEK_TEXT[name.lower()] if fold_case and name.lower() in _LOWER_ONLY else name

    def accent(self, letter: str, mark: str) -> str:
        """A letter with a bar (``Ḡ``, the adjoint) or a tilde (``Ñ``); ``Gbar``, ``N~`` in ASCII."""
        if self.unicode:
            return unicodedata.normalize("NFC", letter + {"bar": "\u0304", "tilde": "\u0303"}[mark])
        return letter + {"bar": "bar", "tilde": "~"}[mark]


UNICODE = Glyphs(unicode=True, transpose="ᵀ", inverse="⁻¹", inverse_transpose="⁻ᵀ", odot="⊙", oslash="⊘",
                 elementwise_power="^∘", sigmoid="σ", sum="Σ", partial="∂", sqrt="√", le="≤", ge="≥", ne="≠")
ASCII = Glyphs(unicode=False, transpose="^T", inverse="^-1", inverse_transpose="^-T", odot="*", oslash="/",
               elementwise_power="**", sigmoid="sigmoid", sum="sum", partial="d", sqrt="sqrt", le="<=", ge=">=",
               ne="!=")

_SUPERSCRIPT = dict(zip("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
GREEK_TEXT = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "eps": "ε", "zeta": "ζ",
              "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "lam": "λ", "mu": "μ", "nu": "ν",
              "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ", "chi": "χ", "psi": "ψ",
              "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Sigma": "Σ", "Phi": "Φ",
              "Psi": "Ψ", "Omega": "Ω"}
# Capitalised names (GAMMA, MU: a layer's matrices) print as the lower-case letter, as their entries do.
_LOWER_ONLY = frozenset(k for k in GREEK_TEXT if k.islower())
GREEK_NAMES = frozenset(k.lower() for k in GREEK_TEXT if k not in ("lam", "eps"))

# --- LaTeX: one macro per element, and the words of named functions ---
LATEX_TRANSPOSE = r"^{\top}"
LATEX_ODOT = r"\odot"
LATEX_OSLASH = r"\oslash"
LATEX_ONE = r"\mathbf{1}"
LATEX_FUNCTIONS = {"sigmoid": r"\sigma", "exp": r"\exp", "log": r"\log", "tanh": r"\tanh", "det": r"\det",
                   "logdet": r"\log\det", "trace": r"\operatorname{tr}", "softmax": r"\operatorname{softmax}",
                   "logsumexp": r"\operatorname{logsumexp}", "relu": r"\operatorname{relu}",
                   "softplus": r"\operatorname{softplus}", "sum": r"\operatorname{sum}",
                   "diag": r"\operatorname{diag}", "sign": r"\operatorname{sign}"}
# Text words where a function's name is not its textbook word (sigmoid is the glyph set's own).
TEXT_FUNCTIONS = {"trace": "tr", "logdet": "log det"}


def derivative_text(objective: str, wrt: str, glyphs: Glyphs | None = None) -> str:
    """``∂E/∂W`` in Unicode, ``dE/dW`` in ASCII.

    Examples
    --------
    >>> derivative_text("E", "W_pq", UNICODE), derivative_text("E", "W_pq", ASCII)
    ('∂E/∂W_pq', 'dE/dW_pq')
    """
    d = (glyphs or current()).partial
    return f"{d}{objective}/{d}{wrt}"


def latex_greek(name: str) -> str | None:
    r"""``gamma`` -> ``\gamma`` (also for ``GAMMA``), ``lam`` -> ``\lambda``, ``eps`` -> ``\epsilon``; None otherwise."""
    short = {"lam": "lambda", "eps": "epsilon"}
    low = short.get(name, name.lower())
    return "\\" + low if low in GREEK_NAMES else None


def _every_glyph(g: Glyphs) -> str:
    fields = (g.transpose, g.inverse, g.inverse_transpose, g.odot, g.oslash, g.elementwise_power, g.sigmoid, g.sum,
              g.partial, g.sqrt, g.le, g.ge, g.ne)
    extra = ("".join(GREEK_TEXT.values()) + "".join(_SUPERSCRIPT.values()) + "‖ḠḡÑ") if g.unicode else ""
    return "".join(fields) + extra


def for_encoding(encoding: str | None) -> Glyphs:
    """UNICODE where ``encoding`` encodes every glyph (or is None: a Python string holds any); ASCII otherwise.

    Examples
    --------
    >>> for_encoding("utf-8").unicode, for_encoding("ascii").unicode, for_encoding("latin-1").unicode
    (True, False, False)
    """
    if encoding is None:
        return UNICODE
    try:
        _every_glyph(UNICODE).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII
    return UNICODE


def for_stream(stream: Any) -> Glyphs:
    """The glyphs a stream can show: by its ``encoding`` attribute."""
    return for_encoding(getattr(stream, "encoding", None))


_CHOSEN: contextvars.ContextVar[Glyphs | None] = contextvars.ContextVar("derivcheck_glyphs", default=None)


def current() -> Glyphs:
    """The glyphs in force: a caller's choice made with :func:`use`, else what ``sys.stdout`` can encode."""
    chosen = _CHOSEN.get()
    return chosen if chosen is not None else for_stream(sys.stdout)


@contextlib.contextmanager
def use(glyphs: Glyphs | str) -> Iterator[Glyphs]:
    """Print with ``glyphs`` (or ``"unicode"``/``"ascii"``) inside the block, whatever the terminal.

    Examples
    --------
    >>> with use("ascii") as g:
    ...     current() is ASCII
    True
    """
    g = {"unicode": UNICODE, "ascii": ASCII}[glyphs] if isinstance(glyphs, str) else glyphs
    token = _CHOSEN.set(g)
    try:
        yield g
    finally:
        _CHOSEN.reset(token)


def notation_help(glyphs: Glyphs | None = None) -> str:
    """What the matrix language reads, every printed form included: the help of derive-expr and check-eq.

    Examples
    --------
    >>> "X^T (P - T)" in notation_help(ASCII) and notation_help(ASCII).isascii()
    True
    """
    g = glyphs or current()
    t, u = g.transpose, g.unicode
    both = (lambda uni, asc: f"{uni} or {asc}") if u else (lambda uni, asc: asc)
    rows = [
        ("juxtaposition", f"A x, X{t} (P - T): the matrix product; 2 {g.greek('lam')} w: a number times; "
                          f"a{t} b: an inner product, a b{t}: an outer one"),
        ("precedence", f"{t} ^ ** bind tightest, then juxtaposition, then * / @{' ⊙ ⊘' if u else ''} (left to "
                       f"right), then + -; a leading minus negates the whole product: -X{t} G / N is -(X{t} G / N)"),
        ("transpose", f"{both('Xᵀ', 'X^T')} X.T X' (of a vector: a row); inverse {both('X⁻¹', 'X^-1')}, "
                      f"inverse transpose {both('X⁻ᵀ', 'X^-T')}"),
        ("elementwise", f"{both('A ⊙ B', 'A * B')}, {both('A ⊘ B', 'A / B')}, powers {both('X^∘2 x²', 'X**2 x^2')}"),
        ("ones", "1_N: a ones vector of length N (1_N 1_D" + t + ": a matrix of ones); I_N: the identity"),
        ("functions", f"{both('σ(z)', 'sigmoid(z)')} tr(A) log det(A) {both('‖x‖ ‖X‖_F', 'norm2(x) frobenius(X)')} "
                      "|x| 1[x > 0] (step) sign(x), and every function of the input language"),
    ]
    if u:
        rows.append(("Greek letters", "the declared names they print as: λ for lam, μ for mu"))
    return "The printed notation reads back as input:\n" + "\n".join(f"  {k:<14} {v}" for k, v in rows)

