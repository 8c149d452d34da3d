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
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator
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
    cdot: str  # a product of sizes inside an index, x[n, K·p]: juxtaposition there would read as one name
    arrow: str


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
        if not self.unicode or name in _APART.get().spelled:
            return name
        if name in GREEK_TEXT:
            return GREEK_TEXT[name]
        return GREEK_TEXT[name.lower()] if fold_case and name.lower() in _LOWER_ONLY else name

    def accent(self, letter: str, mark: str) -> str:
        """A letter with a bar (``Ḡ``, the adjoint), a tilde (``Ñ``) or a hat (``X̂``, normalized); ``Gbar``, ``N~``,
        ``Xhat`` in ASCII."""
        if self.unicode:
            return unicodedata.normalize("NFC", letter + _COMBINING[mark])
        return letter + _ACCENT_WORDS[mark]

    def name(self, name: str) -> str:
        """A symbol's name as text: Greek names as letters in Unicode; an accented name (``X̂``) spelled out in
        ASCII (``Xhat``), as :meth:`accent` spells it.

        Examples
        --------
        >>> UNICODE.name("mu"), ASCII.name("X\u0302"), ASCII.name("mu")
        ('μ', 'Xhat', 'mu')
        """
        return self.greek(name) if self.unicode or name.isascii() else plain(name)

    def derivative(self, objective: str, wrt: str, wrt2: str | None = None) -> str:
        """``∂E/∂W``; with ``wrt2`` the second derivative ``∂²E/∂W ∂b`` (``d2E/dW db`` in ASCII)."""
        d = self.partial
        if wrt2 is None:
            return f"{d}{objective}/{d}{wrt}"
        return f"{d}{self.superscript(2) or '2'}{objective}/{d}{wrt} {d}{wrt2}"

    def text(self, prose: str) -> str:
        """Prose written in Unicode math, in these glyphs: itself in Unicode, :func:`plain` in ASCII."""
        return prose if self.unicode else plain(prose)


UNICODE = Glyphs(unicode=True, transpose="ᵀ", inverse="⁻¹", inverse_transpose="⁻ᵀ", odot="⊙", oslash="⊘",
                 elementwise_power="^∘", sigmoid="σ", sum="Σ", partial="∂", sqrt="√", le="≤", ge="≥", ne="≠",
                 cdot="·", arrow="→")
ASCII = Glyphs(unicode=False, transpose="^T", inverse="^-1", inverse_transpose="^-T", odot="*", oslash="/",
               elementwise_power="**", sigmoid="sigmoid", sum="sum", partial="d", sqrt="sqrt", le="<=", ge=">=",
               ne="!=", cdot="*", arrow="->")
_COMBINING = {"bar": "\u0304", "tilde": "\u0303", "hat": "\u0302"}
_ACCENT_WORDS = {"bar": "bar", "tilde": "~", "hat": "hat"}

_SUPERSCRIPT = dict(zip("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
GREEK_TEXT = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "eps": "ε", "zeta": "ζ",
              "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "lam": "λ", "mu": "μ", "nu": "ν",
              "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ", "chi": "χ", "psi": "ψ",
              "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Sigma": "Σ", "Phi": "Φ",
              "Psi": "Ψ", "Omega": "Ω"}
# Capitalised names (GAMMA, MU: a layer's matrices) print as the lower-case letter, as their entries do.
_LOWER_ONLY = frozenset(k for k in GREEK_TEXT if k.islower())
GREEK_NAMES = frozenset(k.lower() for k in GREEK_TEXT if k not in ("lam", "eps"))

def _glyph_fields(g: Glyphs) -> tuple[str, ...]:
    return (g.transpose, g.inverse, g.inverse_transpose, g.odot, g.oslash, g.elementwise_power, g.sum, g.partial,
            g.sqrt, g.le, g.ge, g.ne, g.cdot, g.arrow)


def _plain_table() -> dict[str, str]:
    """Every Unicode glyph -> its ASCII spelling: the two glyph sets side by side, then letters and marks."""
    table = {"∂²": "d2"}  # a second derivative, d2E/dx dy: as the ASCII set writes it
    table.update((u, a) for u, a in zip(_glyph_fields(UNICODE), _glyph_fields(ASCII)) if u != a)
    for name, letter in GREEK_TEXT.items():
        table.setdefault(letter, name)  # the full name first: lambda, never lam
    # σ before a parenthesis or a prime is the sigmoid (σ(z), σ'); elsewhere the letter sigma (σ_q).
    table.update({"σ(": "sigmoid(", "σ'": "sigmoid'"})
    table.update({"‖": "||", "×": "x", "≈": "~=", "…": "...", "—": "--", "–": "-", "’": "'", "“": '"', "”": '"',
                  "∘": "o", "∈": "in", "±": "+-", "∞": "inf", "⊗": "(x)"})
    return table


_PLAIN = _plain_table()
_PLAIN_PATTERN = re.compile("|".join(re.escape(k) for k in sorted(_PLAIN, key=len, reverse=True))
                            + "|[" + "".join(_SUPERSCRIPT.values()) + "]+")


def plain(text: str) -> str:
    """Unicode math in ASCII: ``∂E/∂Z = G ⊙ σ(Z)`` -> ``dE/dZ = G * sigmoid(Z)``; the one transliteration, for prose
    written in Unicode (the derivation scripts' own sentences) where the stream cannot show it.

    Examples
    --------
    >>> plain("∂E/∂W = Xᵀ G, Σ_n x̂_nq = 0, ‖x‖², μ ≤ σ_q")
    'dE/dW = X^T G, sum_n xhat_nq = 0, ||x||^2, mu <= sigma_q'
    """
    def one(m: re.Match[str]) -> str:
        s = m.group(0)
        if s in _PLAIN:
            return _PLAIN[s]
        return "^" + "".join(_DIGIT_OF_SUPERSCRIPT[c] for c in s)

    out = _PLAIN_PATTERN.sub(one, unicodedata.normalize("NFC", text))
    if out.isascii():
        return out
    # A letter with a mark (x̂, Ḡ, Ñ): the letter and the mark's word, as Glyphs.accent spells it in ASCII.
    out = _MARKED.sub(lambda m: m.group(1) + "".join(_MARK_WORDS[c] for c in m.group(2)),
                      unicodedata.normalize("NFD", out))
    return "".join(c if c.isascii() else _plain_char(c) for c in unicodedata.normalize("NFC", out))


_DIGIT_OF_SUPERSCRIPT = {v: k for k, v in _SUPERSCRIPT.items()}


def read_superscript(s: str) -> int:
    """An integer written in superscript digits, as :meth:`Glyphs.superscript` writes it: ``⁻¹`` is -1.

    >>> read_superscript("⁻¹"), read_superscript("²")
    (-1, 2)
    """
    return int("".join(_DIGIT_OF_SUPERSCRIPT[c] for c in s))
_MARK_WORDS = {v: _ACCENT_WORDS[k] for k, v in _COMBINING.items()}
_MARKED = re.compile("([A-Za-z])([" + "".join(_COMBINING.values()) + "]+)")


def _plain_char(c: str) -> str:
    """Any other character as its ASCII base letter (é -> e), or ? where it has none: the output stays ASCII."""
    folded = unicodedata.normalize("NFKD", c).encode("ascii", "ignore").decode()
    return folded or "?"


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


def latex_name_rule(name: str) -> str | None:
    r"""The LaTeX of a name that is no plain identifier: an accented letter (``X̂`` -> ``\hat{X}``, ``Ḡ`` ->
    ``\bar{G}``) and a one-hot matrix (``onehot_t`` -> ``\operatorname{onehot}(t)``); None for any other name.

    Examples
    --------
    >>> latex_name_rule("X\u0302"), latex_name_rule("onehot_ids"), latex_name_rule("W")
    ('\\hat{X}', '\\operatorname{onehot}(\\mathrm{ids})', None)
    """
    letter, *marks = unicodedata.normalize("NFD", name)
    macros = {v: k for k, v in _COMBINING.items()}
    if len(marks) == 1 and marks[0] in macros and letter.isascii() and letter.isalpha():
        return rf"\{macros[marks[0]]}{{{letter}}}"
    head, _, arg = name.partition("_")
    if head == "onehot" and arg:  # onehot_t would subscript one letter of a word: it is the function of t
        shown = arg if len(arg) == 1 else rf"\mathrm{{{arg}}}"
        return rf"\operatorname{{onehot}}({shown})"
    return None


def latex_greek(name: str) -> str | None:
    r"""``gamma`` -> ``\gamma`` (also for ``GAMMA``), ``lam`` -> ``\lambda``, ``eps`` -> ``\epsilon``; a name
    :func:`names_apart` spells out as itself (``\mathrm{eps}``); None otherwise."""
    if name in _APART.get().spelled:
        return rf"\mathrm{{{name}}}"
    short = {"lam": "lambda", "eps": "epsilon"}
    low = short.get(name, name.lower())
    return "\\" + low if low in GREEK_NAMES else None


@dataclass(frozen=True)
class Apart:
    """How the names of one derivation are kept apart: ``spelled`` print as written, not as a Greek letter;
    ``capital_entries`` (matrices) write their entries with the matrix's own letter, ``G_pq``, where the
    lower-case letter names a vector or scalar of the same derivation."""

    spelled: frozenset[str] = frozenset()
    capital_entries: frozenset[str] = frozenset()


_APART: contextvars.ContextVar[Apart] = contextvars.ContextVar("derivcheck_apart", default=Apart())


def printed_alike(names: Iterable[str]) -> frozenset[str]:
    """The names to spell out so that no two of ``names`` print as one Greek letter: of each group (``eps`` and
    ``epsilon`` are both ε; ``GAMMA``, a matrix, and ``gamma`` both γ), all but the full lower-case name.

    Examples
    --------
    >>> sorted(printed_alike(["eps", "epsilon", "x", "GAMMA", "gamma", "mu"]))
    ['GAMMA', 'eps']
    """
    groups: dict[str, list[str]] = {}
    for name in set(names):
        letter = (GREEK_TEXT.get(name) or GREEK_TEXT[name.lower()]) if name.lower() in _LOWER_ONLY else name  # fold case
        if letter != name:
            groups.setdefault(letter, []).append(name)

    def kept_first(name: str) -> tuple[bool, bool, str]:
        return name not in GREEK_NAMES, not name.islower(), name

    return frozenset(n for group in groups.values() for n in sorted(group, key=kept_first)[1:])


def apart() -> Apart:
    """The names kept apart in the derivation being printed (none outside :func:`names_apart`)."""
    return _APART.get()


@contextlib.contextmanager
def names_apart(spelled: Iterable[str] = (), capital_entries: Iterable[str] = ()) -> Iterator[Apart]:
    r"""Print one derivation with these names kept apart, in text and LaTeX alike.

    Examples
    --------
    >>> with names_apart(spelled=printed_alike(["eps", "epsilon"])):
    ...     UNICODE.name("eps"), UNICODE.name("epsilon"), latex_greek("eps")
    ('eps', 'ε', '\\mathrm{eps}')
    """
    token = _APART.set(Apart(frozenset(spelled), frozenset(capital_entries)))
    try:
        yield _APART.get()
    finally:
        _APART.reset(token)


def _every_glyph(g: Glyphs) -> str:
    extra = ("".join(GREEK_TEXT.values()) + "".join(_SUPERSCRIPT.values()) + "‖ḠḡÑX̂") if g.unicode else ""
    return "".join(_glyph_fields(g)) + g.sigmoid + extra


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

