"""Joint spectral radius (JSR) bounds for a finite set of square matrices.

For a bounded set S = {A_0, ..., A_{m-1}} of n x n matrices,

.. math::

    \\rho(S) = \\lim_{k\\to\\infty} \\max_{|w| = k} \\|A_w\\|^{1/k}
             = \\limsup_{k\\to\\infty} \\max_{|w| = k} \\rho(A_w)^{1/k},

with ``A_w = A_{w[-1]} ... A_{w[1]} A_{w[0]}`` (``w[0]`` is applied first). It is independent of
the norm and JSR(conv S) = JSR(S). ``rho(S) < 1`` iff some operator norm has ``||A|| < 1`` for
every A in S: exactly the contraction assumption behind piggyback differentiation.

Lower bounds are ``rho(A_w)^{1/|w|}`` for products found by a branch-and-bound search over words
(Gripenberg 1996), evaluated on one rotation per class (cyclic rotations have the same
spectrum). Upper bounds are norms of the set, proved by each family's own check
(:mod:`conservative.certify.norms`, tried in the order of
:data:`conservative.certify.finders.FINDERS`), and float bounds from norms of products.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._deadline import Deadline, check_progress, progress_bar
from .._types import check_bool, check_int, check_real
from .finders import PHASES, analyse
from .matrices import parse_matrix_set
from .norms import Norm
from .. import _display
from .report import Verified, format_word, number, verified_words
from .sdp import import_cvxpy
from .targets import MatrixSet

__all__ = ["JSRResult", "jsr"]

_CALL = "cv.jsr"


@dataclass(frozen=True, repr=False)          # repr from _display.Summary
class JSRResult(_display.Summary):
    """Bracket ``lower <= JSR <= upper`` with the evidence for each side.

    Attributes
    ----------
    lower : float
        ``rho(A_word)^(1/len(word))`` (a float estimate of an algebraic number).
    upper : float
        Upper bound. When ``upper_verified`` is "exact" or "interval" it was proved.
    word : tuple of int
        Best product found, in application order: the product is
        ``A[word[-1]] @ ... @ A[word[0]]``. Always a canonical (least) rotation.
    lower_method, upper_method : str
        Which algorithm gave each bound.
    upper_verified : Verified
        ``"exact"`` (rational check), ``"interval"`` (rigorous floating point) or ``"float"``.
    norm : Norm or None
        The norm behind the upper bound, when it is a norm of the set.
    stopped : str
        "" when every phase ran; otherwise the time limit that cut the computation short and
        the phases it skipped (the bracket is valid, only wider than it could be).

    ``P`` (quadratic form, for quadratic norms and quadratic norms of products) and
    ``polytope`` (vertices of a polytope norm) are read-only properties of the norm.

    Examples
    --------
    >>> print(jsr([[[0.5, 1e6], [0.0, 0.5]]]))      # doctest: +ELLIPSIS
    JSR in [0.5, 0.50000...] (relative gap ...)
      lower: spectral radius of one matrix (proved), word 0 (A[w[-1]]...A[w[0]])
      upper: ... (verified: exact)
    """

    lower: float
    upper: float
    word: tuple
    lower_method: str
    upper_method: str
    upper_verified: Verified = Verified.FLOAT
    norm: Norm | None = field(default=None, repr=False, compare=False)
    stopped: str = ""

    def __post_init__(self):
        object.__setattr__(self, "upper_verified", Verified(self.upper_verified))

    @property
    def P(self) -> np.ndarray | None:
        return getattr(self.norm, "P", None) if getattr(self.norm, "family", "") in (
            "quadratic", "lifted quadratic") else None

    @property
    def polytope(self) -> np.ndarray | None:
        return getattr(self.norm, "V", None) if getattr(self.norm, "family", "") == \
            "polytope" else None

    @property
    def gap(self) -> float:
        """Relative width ``(upper - lower) / upper`` of the bracket."""
        return 0.0 if self.upper == 0 else (self.upper - self.lower) / self.upper

    def __str__(self) -> str:
        if len(self.word) > 40:
            word = f"of {len(self.word)} letters"
        else:
            word = ("".join(map(str, self.word)) if max(self.word, default=0) < 10
                    else "-".join(map(str, self.word)))
        return (f"JSR in [{self.lower:.12g}, {self.upper:.12g}] (relative gap {self.gap:.2e})\n"
                f"  lower: {self.lower_method}, word {word} (A[w[-1]]...A[w[0]])\n"
                f"  upper: {self.upper_method} (verified: {self.upper_verified})")

    def _summary(self):
        """``(title, rows)`` of the repr and the HTML table."""
        title = f"JSRResult: JSR in [{number(self.lower, 10)}, {number(self.upper, 10)}]"
        rows = [("relative gap", f"{self.gap:.2e}"),
                ("lower bound", f"word {format_word(self.word, 12)} (A[w[-1]] ... A[w[0]]): "
                                f"{_short(self.lower_method, 56)}"),
                ("upper bound", f"{getattr(self.norm, 'family', None) or 'no norm'}: "
                                f"{_short(self.upper_method)}"),
                ("verified", verified_words(self.upper_verified))]
        if self.stopped:
            rows.append(("stopped", _short(self.stopped, 96)))
        return title, rows

    def to_dict(self) -> dict:
        """JSON-ready dictionary (arrays become nested lists)."""
        return {
            "lower": self.lower, "upper": self.upper, "word": list(self.word),
            "lower_method": self.lower_method, "upper_method": self.upper_method,
            "upper_verified": str(self.upper_verified), "stopped": self.stopped,
            "family": getattr(self.norm, "family", None),
            "P": None if self.P is None else self.P.tolist(),
            "polytope": None if self.polytope is None else self.polytope.T.tolist(),
        }


def _short(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def jsr(mats: Any, *, tol: float = 1e-6, max_length: int = 30,
        time_limit: float | None = 20.0, max_nodes: int = 20000, use_sdp: bool = True,
        use_polytope: bool = True, progress: bool | None = None) -> JSRResult:
    """Bracket the joint spectral radius of a finite set of square matrices.

    .. math::

        \\max_{w \\text{ found}} \\rho(A_w)^{1/|w|} \\;\\le\\; \\mathrm{JSR}(S) \\;\\le\\;
        \\sup_{A \\in S} \\|A\\| \\quad \\text{for every operator norm.}

    The lower bound comes from a pruned search over products (cyclic words, one evaluation per
    rotation class). The upper bound is the best proved norm of the set (Euclidean, weighted
    infinity, diagonal and Lyapunov quadratic norms, a common quadratic norm by SDP, the
    invariant polytope started from the best product, quadratic norms of products of length
    2-4) or, when none is proved, the best float bound (norms of all products of a length,
    Gripenberg's branch and bound).

    Parameters
    ----------
    mats : array_like (k, n, n), list of matrices, or JacobianSet
        The set S. For a JacobianSet ``js`` the vertices ``js.A.vertices`` are used, since
        JSR(conv S) = JSR(S).
    tol : float
        Target relative width of the bracket (Gripenberg's pruning margin is ``tol * lower``).
    max_length : int
        Longest product examined by the branch and bound.
    time_limit : float or None
        Seconds for the whole computation (None: no limit). No search level, solver call or
        check starts after it; one already running may finish (a single SDP solve cannot be
        interrupted). When the limit cuts the computation short, the bracket is still valid
        and ``stopped`` (and ``upper_method``) says what was skipped.
    max_nodes : int
        Products kept per level of the branch and bound (those with the largest bounds).
    use_sdp, use_polytope : bool
        Switch off the SDP-based norms or the invariant polytope algorithm.
    progress : bool or None
        None: a progress bar (tqdm) when the call runs for more than 2 s and a terminal or
        notebook is attached; True: always; False: never.

    Returns
    -------
    JSRResult

    Raises
    ------
    ShapeError
        Not a non-empty stack of square matrices.
    NonFiniteError
        NaN or infinite entries.
    InputError
        Bad options, or complex/bool/object input.

    Examples
    --------
    >>> r = jsr([[[1, 1], [0, 1]], [[1, 0], [1, 1]]])
    >>> abs(r.lower - (1 + 5 ** 0.5) / 2) < 1e-12, r.upper - r.lower < 1e-6, r.word
    (True, True, (0, 1))
    >>> r = jsr(np.array([[[3, 0], [1, 3]], [[3, -3], [0, -1]]]) / 5)    # Gripenberg's pair
    >>> r.word, r.upper - r.lower < 1e-9, r.upper_verified
    ((0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), True, 'exact')
    """
    A = parse_matrix_set(mats, call=_CALL)
    tol = check_real(tol, name="tol", call=_CALL, minimum=0.0, strict=True)
    max_length = check_int(max_length, name="max_length", call=_CALL, minimum=1)
    max_nodes = check_int(max_nodes, name="max_nodes", call=_CALL, minimum=1)
    use_sdp = check_bool(use_sdp, name="use_sdp", call=_CALL)
    use_polytope = check_bool(use_polytope, name="use_polytope", call=_CALL)
    progress_flag = check_progress(progress, call=_CALL)
    if use_sdp:
        import_cvxpy()                  # the first import is slow; keep it off the clock
    dl = Deadline.from_time_limit(time_limit, call=_CALL)
    with progress_bar(len(PHASES), _CALL, progress_flag) as bar:
        an = analyse(MatrixSet(A), tol=tol, max_length=max_length, max_nodes=max_nodes,
                     use_sdp=use_sdp, use_polytope=use_polytope, deadline=dl, bar=bar)
    best = an.best()
    upper = max(best.value, an.lower)
    method = best.method + (f" -- partial bracket: {an.stopped}" if an.stopped else "")
    return JSRResult(an.lower, upper, an.word, an.lower_method, method, best.verified,
                     best.norm, stopped=an.stopped)

