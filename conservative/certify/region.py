"""Certificates over whole regions of parameters: adaptive subdivision (branch and bound).

:func:`certify_region` splits a parameter box (and, when a state box is given, the state box)
until every leaf is certified, proved divergent, or the budget is spent. In fixed-point mode
(no state box) each leaf ``Theta`` first gets a rigorous enclosure ``X`` of the fixed point
``x̄(theta)`` for *every* ``theta`` in it (Krawczyk's test with the parameters as an interval,
:func:`conservative.fixed_point_set.parametric_enclosure`), then a contraction certificate for
every Jacobian on ``X x Theta``: so the derivative iteration contracts at ``x̄(theta)`` for all
those parameters. Leaves run through any :class:`concurrent.futures.Executor` (serial by
default, a process pool, or a Dask cluster: ``distributed.Client(...).get_executor()``).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import pickle
import time
from dataclasses import dataclass, field

import numpy as np

from .._deadline import Deadline, check_progress, progress_bar
from .._types import as_float_array, check_int
from ..errors import ConservativeError, InputError, fail_message
from ..fixed_point_set import parametric_enclosure
from .contraction import Certificate, certify_target, report_for_map
from .maps import box_target, is_map
from .. import _display
from .report import Verified, format_word, number, verified_words
from .sdp import import_cvxpy

__all__ = ["RegionCertificate", "certify_region", "solve_fixed_point", "certify_leaf"]

_CALL = "cv.certify_region"


@dataclass(frozen=True, repr=False)          # repr from _display.Summary
class RegionCertificate(_display.Summary):
    """Result of :func:`certify_region`.

    Attributes
    ----------
    certified : bool
        True when every leaf is certified (then ``coverage`` is 1).
    rho : float
        The largest contraction bound over the certified leaves (nan when none is).
    leaves : list of (theta_box, x_box, Certificate)
        The certified leaves: parameter box, state box (in fixed-point mode, the proved
        enclosure of ``x̄(theta)`` for every theta of the leaf), certificate.
    refused : list of (theta_box, x_box, reason, word)
        The leaves not certified, with the reason and, where one was found, the map's own
        divergent word: a product with spectral radius above 1 of the elements of
        ``F.jacobian(x̄, theta_c, hull=False).vertices`` at the leaf's centre ``theta_c``
        (the indices a piggyback ``selection`` takes), else of the leaf's sampled Jacobians.
    coverage : float
        The certified fraction of the volume of the box (parameters; parameters and state
        when a state box is subdivided too). Degenerate directions do not count.
    boxes : int
        Leaves examined.
    seconds : float
    stopped : str
        Why the subdivision stopped early ("" when it ran to the end).
    """

    certified: bool
    rho: float
    leaves: list
    refused: list
    coverage: float
    boxes: int = 0
    seconds: float = 0.0
    stopped: str = ""
    root: tuple = field(default=(), repr=False)

    @property
    def verified(self) -> Verified:
        """The weakest verification over the certified leaves ("float" when none is)."""
        if not self.leaves:
            return Verified.FLOAT
        return Verified.weakest(*(c.verified for _, _, c in self.leaves))

    def _summary(self):
        """``(title, rows)`` of the repr and the HTML table."""
        diverging = [r for r in self.refused if r[3] is not None]
        title = ("RegionCertificate: certified on the whole box" if self.certified else
                 f"RegionCertificate: NOT certified ({self.coverage:.1%} of the box is)")
        rows = [("coverage", f"{self.coverage:.1%} of the box, {len(self.leaves)} certified "
                             f"leaves of {self.boxes} examined"),
                ("rho", f"{number(self.rho, 6)} (largest over certified leaves)"),
                ("verified", verified_words(self.verified) if self.leaves else "none"),
                ("refused", f"{len(self.refused)} leaves, {len(diverging)} with a divergent "
                            "word" + (f" (e.g. {format_word(diverging[0][3], 12)})"
                                      if diverging else ""))]
        if self.stopped:
            rows.append(("stopped", " ".join(self.stopped.split())[:96]))
        rows.append(("time", f"{self.seconds:.1f} s"))
        return title, rows

    def to_dict(self) -> dict:
        """JSON-ready dictionary (boxes as lists; the leaves' certificates as dictionaries)."""
        def box(b):
            return None if b is None else [np.asarray(v).tolist() for v in b]
        return {"certified": self.certified, "coverage": self.coverage,
                "verified": str(self.verified),
                "rho": None if not math.isfinite(self.rho) else self.rho,
                "boxes": self.boxes, "seconds": self.seconds, "stopped": self.stopped,
                "leaves": [{"theta_box": box(t), "x_box": box(x), "certificate": c.to_dict()}
                           for t, x, c in self.leaves],
                "refused": [{"theta_box": box(t), "x_box": box(x), "reason": r,
                             "word": None if w is None else list(w)}
                            for t, x, r, w in self.refused]}

    def plot(self, ax=None, *, labels: bool = True, dims=(0, 1)):
        """Draw certified and refused leaves (1-D and 2-D parameter boxes).

        Certified leaves are coloured by their rho, refused leaves grey, hatched where a
        divergent word was found (labelled with it when there is room).
        """
        from .region_plot import plot_region
        return plot_region(self, ax=ax, labels=labels, dims=dims)


# ---------------------------------------------------------------------------------------------
# one leaf (module level: executors pickle it)


def solve_fixed_point(F, x0, theta, *, tol: float = 1e-13, max_steps: int = 20_000):
    """A fixed point of ``F(., theta)`` near ``x0``: semismooth Newton steps on ``x - F(x)``
    (exact for piecewise-affine maps once the pieces are right), plain iteration as a
    fallback; returns the best point found (its residual decides what follows)."""
    x = np.array(x0, dtype=float).reshape(F.state_shape)
    best, best_res = x, math.inf
    with np.errstate(all="ignore"):
        for _ in range(30 if F.n <= 2000 else 0):
            fx = F(x, theta)
            res = float(np.max(np.abs(fx - x), initial=0.0))
            if res < best_res:
                best, best_res = x, res
            if res <= tol * (1 + float(np.max(np.abs(x), initial=0.0))):
                return x
            A = F.jacobian(x, theta, hull=False).default[:, :F.n]
            try:
                step = np.linalg.solve(np.eye(F.n) - A, (fx - x).ravel())
            except np.linalg.LinAlgError:
                break
            x = (x.ravel() + step).reshape(F.state_shape)
            if not np.all(np.isfinite(x)):
                break
        x = best
        for _ in range(max_steps):
            fx = F(x, theta)
            res = float(np.max(np.abs(fx - x), initial=0.0))
            if res < best_res:
                best, best_res = fx, res
            if res <= tol * (1 + float(np.max(np.abs(x), initial=0.0))):
                return fx
            x = fx
    return best


class _PickledMap:
    """A Map sent to executor workers as its pickle and a digest of it: each worker process
    unpickles it once and keeps it (with its caches warm) for every later leaf. Equal digests
    mean equal bytes, hence the same map."""

    def __init__(self, F):
        self.data = pickle.dumps(F, protocol=pickle.HIGHEST_PROTOCOL)
        self.digest = hashlib.sha256(self.data).hexdigest()

    @staticmethod
    def of(F):
        """The wrapper, or F itself when the standard pickle cannot take it (executors that
        use cloudpickle may still ship it)."""
        try:
            return _PickledMap(F)
        except (pickle.PicklingError, TypeError, AttributeError):   # send it as it is
            return F

    def load(self):
        cache = _map_of.cache
        key = ("pickled map", self.digest)
        if key not in cache:
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            cache[key] = pickle.loads(self.data)
        return cache[key]


def _map_of(F):
    """The Map itself, or one built (once per process) by a picklable zero-argument factory."""
    if is_map(F):
        return F
    if isinstance(F, _PickledMap):
        return F.load()
    if not callable(F):
        raise InputError(fail_message(_CALL, f"F of type {type(F).__name__}",
                                      "pass a Map, or a zero-argument callable returning one"))
    cache = _map_of.cache
    key = getattr(F, "__qualname__", None), getattr(F, "__module__", None), repr(F)
    if key not in cache:
        cache[key] = F()
    return cache[key]


_map_of.cache = {}


def certify_leaf(F, theta_box, x_box, x_start, time_limit, stop_below=1.0,
                 divergence_first=False):
    """Certify one leaf; returns ``(certificate, x_box, x_fixed, divergent_everywhere, word)``
    (module level for executors). ``x_box`` None: fixed-point mode (the proved enclosure is
    returned). ``stop_below``: the search for a norm ends at the first bound proved below it.
    ``divergent_everywhere``: the map's own Jacobians have a divergent product at every
    sampled parameter of the leaf (the centre and the corners), not only at some.

    ``divergence_first`` (a leaf inside a region found divergent): those samples are examined
    first, and when every one diverges no norm is sought (it could not exist: the samples'
    Jacobians are elements of the leaf's set) and no enclosure is computed."""
    F = _map_of(F)
    lo_t, hi_t = (np.asarray(v, dtype=float) for v in theta_box)
    dl = Deadline(time_limit)
    x_fixed = None
    try:
        if x_box is None:
            centre = 0.5 * lo_t + 0.5 * hi_t
            x_fixed = solve_fixed_point(F, x_start, centre)
        if divergence_first:
            found = _divergent_at_samples(F, (lo_t, hi_t), x_box, x_fixed)
            if found.everywhere:
                return _divergent_leaf(found), x_box, x_fixed, True, found.word
        if x_box is None:
            enc = parametric_enclosure(F, (lo_t, hi_t), x_fixed)
            if not enc.proven:
                return _not_enclosed(enc), None, x_fixed, False, None
            x_box = (np.asarray(enc.lo), np.asarray(enc.hi))
        # the map's own Jacobians at the centre and two corners only: the corners and the
        # centre are examined again below whenever they matter (a divergent product)
        mt = box_target(F, x_box, (lo_t, hi_t), call=_CALL,
                        x_point=x_fixed if x_fixed is not None else None, own_samples=0)
        cert = certify_target(mt.target, deadline=dl, coupling=mt.coupling,
                              stop_below=stop_below)
        # whether the map's own Jacobians diverge is all the subdivision asks of them (the
        # centre's best word is sought below when they do)
        cert = report_for_map(cert, mt, deadline=dl.at, stop_above=1.0)
    except ConservativeError as exc:
        cert = Certificate(False, math.inf, None, Verified.FLOAT, math.nan, None,
                           f"the leaf could not be examined ({exc})", "none")
        return cert, x_box, x_fixed, False, None
    everywhere, word = False, None
    if not cert.certified and math.isfinite(cert.lower) and cert.lower > 1:
        found = _divergent_at_samples(F, (lo_t, hi_t), x_box, x_fixed)
        everywhere, word = found.everywhere, found.word
    return cert, x_box, x_fixed, everywhere, word


def certify_leaves(args: list) -> list:
    """:func:`certify_leaf` on several leaves, in order (one executor task)."""
    return [certify_leaf(*a) for a in args]


#: Most leaves sent in one executor task.
MAX_BATCH = 8


def _batch_size(waiting: int) -> int:
    """Leaves per task: one while few are waiting (keep the workers fed), up to ``MAX_BATCH``."""
    return max(1, min(MAX_BATCH, waiting // 8))


@dataclass(frozen=True)
class _Samples:
    """What :func:`_divergent_at_samples` found."""

    everywhere: bool                    # a divergent product at the centre and every corner
    word: tuple | None                  # the centre's word (None: the centre does not diverge)
    lower: float = math.nan             # the centre's proved rho(A_w)^(1/|w|)
    centre: np.ndarray | None = None    # the centre's elements, which the word indexes


def _divergent_at_samples(F, theta_box, x_box, x_fixed) -> _Samples:
    """Whether the map's own Jacobians have a divergent product at the leaf's centre and at
    each of its parameter corners (at most 8), and the centre's word (indices into
    ``F.jacobian(x, theta_centre, hull=False).vertices``). The centre gets the full product
    search (its word labels the leaf); at the corners the search stops at the first divergent
    product, and the corners are left at the first one that does not diverge."""
    from .search import product_lower_bound
    lo, hi = theta_box
    free = np.flatnonzero(np.ravel(hi > lo))[:3]
    x = x_fixed if x_fixed is not None else 0.5 * x_box[0] + 0.5 * x_box[1]
    points = [0.5 * lo + 0.5 * hi]
    for bits in range(2 ** len(free)):
        t = np.array(lo, dtype=float).ravel()
        for k, j in enumerate(free):
            if bits >> k & 1:
                t[j] = np.ravel(hi)[j]
        points.append(t.reshape(np.shape(lo)))
    centre, word, lower_c = None, None, math.nan
    for k, t in enumerate(points):
        try:
            A = F.jacobian(x, t, hull=False).A.vertices
        except ConservativeError:
            return _Samples(False, None) if centre is None else \
                _Samples(False, word, lower_c, centre)
        lower, w = product_lower_bound(A, deadline=time.monotonic() + 1.0,
                                       stop_above=math.inf if k == 0 else 1.0)
        if k == 0:
            if not lower > 1:
                return _Samples(False, None)
            centre, word, lower_c = A, w, lower
        elif not lower > 1:
            return _Samples(False, word, lower_c, centre)
    return _Samples(True, word, lower_c, centre)


def _divergent_leaf(found: _Samples) -> Certificate:
    """The refusal of a leaf whose sampled parameters all have a divergent product."""
    k = len(found.word)
    return Certificate(
        False, math.inf, None, Verified.FLOAT, found.lower, found.word,
        f"the map's own Jacobians have a product with spectral radius^(1/{k}) = "
        f"{found.lower:.10g} > 1 at the leaf's centre (word {list(found.word)} of its "
        "elements, in .samples) and a divergent product at each corner: no norm can bound "
        "those elements below 1, so none was sought", "lower bound by products",
        samples=found.centre)


def _not_enclosed(enc) -> Certificate:
    return Certificate(False, math.inf, None, Verified.FLOAT, math.nan, None,
                       f"the fixed point could not be enclosed for every parameter of the "
                       f"leaf ({enc.reason})", "parametric Krawczyk test")


# ---------------------------------------------------------------------------------------------
# the subdivision


@dataclass
class _Leaf:
    theta: tuple
    x: tuple | None
    start: np.ndarray | None
    depth: int = 0
    divergent_depth: int = 0            # splits since an ancestor was found divergent

    def volume(self, widths) -> float:
        sizes = [np.ravel(h - l) for l, h in ([self.theta] + ([self.x] if self.x else []))]
        rel = np.concatenate(sizes) / widths
        return float(np.prod(rel[np.isfinite(rel)]))


def _split(leaf: _Leaf, widths) -> tuple[_Leaf, _Leaf]:
    """Halve the leaf along its widest side (relative to the root box)."""
    parts = [leaf.theta] + ([leaf.x] if leaf.x is not None else [])
    lo = np.concatenate([np.ravel(p[0]) for p in parts])
    hi = np.concatenate([np.ravel(p[1]) for p in parts])
    rel = np.where(widths > 0, (hi - lo) / np.where(widths > 0, widths, 1.0), -1.0)
    j = int(np.argmax(rel))
    mid = 0.5 * lo[j] + 0.5 * hi[j]
    out = []
    for new_lo, new_hi in ((lo.copy(), hi.copy()), (lo.copy(), hi.copy())):
        out.append((new_lo, new_hi))
    out[0][1][j] = mid
    out[1][0][j] = mid
    m = np.size(leaf.theta[0])
    shape_t = np.shape(leaf.theta[0])
    children = []
    for a, b in out:
        theta = (a[:m].reshape(shape_t), b[:m].reshape(shape_t))
        x = None if leaf.x is None else (a[m:].reshape(np.shape(leaf.x[0])),
                                         b[m:].reshape(np.shape(leaf.x[0])))
        children.append(_Leaf(theta, x, leaf.start, leaf.depth + 1, leaf.divergent_depth))
    return children[0], children[1]


def _box_arg(box, shape, name):
    if not (isinstance(box, tuple) and len(box) == 2):
        raise InputError(fail_message(_CALL, f"{name} of type {type(box).__name__}",
                                      f"pass {name} as a (lo, hi) pair of arrays"))
    lo = as_float_array(box[0], name=f"{name}[0]", call=_CALL, shape=shape)
    hi = as_float_array(box[1], name=f"{name}[1]", call=_CALL, shape=shape)
    if np.any(lo > hi):
        raise InputError(fail_message(_CALL, f"{name} with lo > hi somewhere",
                                      "pass (lo, hi) with lo <= hi elementwise"))
    return lo, hi


def certify_region(F, theta_box, x_box=None, *, time_limit: float | None = None,
                   max_boxes: int = 4096, executor=None, progress: bool | None = None,
                   x0=None, max_divergent_depth: int = 3) -> RegionCertificate:
    """Certify the contraction of F's derivative iteration over a whole box of parameters.

    Branch and bound over the box: each leaf is certified (a norm in which every A-block of
    every Jacobian on the leaf has ``||A|| <= rho < 1``, proved "exact" or "interval"), found
    divergent (the map's own Jacobians there have a product of spectral radius above 1: the
    leaf is split further while some of its parameters are not divergent, and at most
    ``max_divergent_depth`` more times once every sampled one is, to draw the boundary; those
    leaves examine their samples first and seek no norm when all diverge), or split in two
    along its widest side, largest leaves first, until ``max_boxes`` leaves have been examined
    or the time is up.

    Parameters
    ----------
    F : Map, or a picklable zero-argument callable returning one
        The callable form lets process pools build the map inside each worker (a Map itself
        pickles once its primitives do).
    theta_box : tuple (lo, hi)
        The parameter box (arrays of ``F.param_shape``).
    x_box : tuple (lo, hi), optional
        A state box: every Jacobian on ``x_box x theta_box`` is certified (both subdivided).
        None (default): fixed-point mode, over a rigorous enclosure of ``x̄(theta)`` for every
        theta of each leaf.
    time_limit : float or None
        Seconds; no leaf starts after it (the result says so in ``stopped``).
    max_boxes : int
        Leaves examined at most.
    executor : concurrent.futures.Executor, optional
        Runs the leaves of each generation in parallel (``ProcessPoolExecutor``, or a Dask
        cluster's ``client.get_executor()``); None: serial.
    progress : bool or None
        A progress bar (None: automatic, when the call runs long).
    x0 : array_like, optional
        Fixed-point mode: where the first fixed point is sought (default zeros).
    max_divergent_depth : int
        Splits of a leaf once its parameters (centre and corners) are all found divergent.

    Returns
    -------
    RegionCertificate

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> X, y = cv.datasets.lasso_small()
    >>> F = cv.algorithms.forward_backward_lasso(X, y)
    >>> reg = cv.certify_region(F, (np.array(4.0), np.array(6.0)))
    >>> reg.certified, reg.coverage, reg.rho < 1
    (True, 1.0, True)
    """
    max_boxes = check_int(max_boxes, name="max_boxes", call=_CALL, minimum=1)
    progress = check_progress(progress, call=_CALL)
    import_cvxpy()
    dl = Deadline.from_time_limit(time_limit, call=_CALL)
    Fm = _map_of(F)
    if not is_map(Fm):
        raise InputError(fail_message(_CALL, f"F of type {type(F).__name__}",
                                      "pass a Map, or a zero-argument callable returning one"))
    root_t = _box_arg(theta_box, Fm.param_shape, "theta_box")
    root_x = None if x_box is None else _box_arg(x_box, Fm.state_shape, "x_box")
    start = np.zeros(Fm.n) if x0 is None else \
        as_float_array(x0, name="x0", call=_CALL, shape=Fm.state_shape).ravel()
    widths = np.concatenate([np.ravel(root_t[1] - root_t[0])] + (
        [np.ravel(root_x[1] - root_x[0])] if root_x is not None else []))
    run = _Subdivision(F, widths, dl, executor, max_boxes, max_divergent_depth)
    with progress_bar(max_boxes, _CALL, progress) as bar:
        run.bar = bar
        run.go(_Leaf(root_t, root_x, start))
    return run.result(root_t, root_x)


#: Leaves in flight at once on an executor.
WINDOW = 32


class _Queue:
    """Leaves waiting, largest volume first (ties: first come, first served)."""

    def __init__(self, widths):
        self.widths, self.heap, self.count = widths, [], 0

    def push(self, leaf: _Leaf) -> None:
        heapq.heappush(self.heap, (-leaf.volume(self.widths), self.count, leaf))
        self.count += 1

    def extend(self, leaves) -> None:
        for leaf in leaves:
            self.push(leaf)

    def pop(self) -> _Leaf:
        return heapq.heappop(self.heap)[2]

    def leaves(self) -> list:
        return [entry[2] for entry in sorted(self.heap)]

    def __len__(self) -> int:
        return len(self.heap)


class _Subdivision:
    """The queue of leaves and what has been decided."""

    def __init__(self, F, widths, dl, executor, max_boxes, max_divergent_depth):
        self.F, self.widths, self.dl, self.executor = F, widths, dl, executor
        self.max_boxes, self.max_div = max_boxes, max_divergent_depth
        self.leaves, self.refused = [], []
        self.done, self.volume = 0, 0.0
        self.stopped = ""
        self.bar = None
        self.t0 = time.monotonic()

    def go(self, root: _Leaf) -> None:
        queue = _Queue(self.widths)
        queue.push(root)
        if self.executor is not None:
            self._go_parallel(queue)
        while queue:
            if self._stop():
                break
            leaf = queue.pop()
            queue.extend(self._decide(leaf, *certify_leaf(*self._args(leaf))))
        for leaf in queue.leaves():               # what is left undecided
            self.refused.append((leaf.theta, leaf.x, "not examined: " + self.stopped, None))

    def _stop(self, in_flight: int = 0) -> bool:
        if self.dl.expired():
            self.stopped = f"time limit: {self.dl.describe()} reached"
            return True
        if self.done + in_flight >= self.max_boxes:
            self.stopped = f"max_boxes={self.max_boxes} leaves examined"
            return True
        return False

    def _args(self, leaf: _Leaf) -> tuple:
        return self.F, leaf.theta, leaf.x, leaf.start, self.dl.time_limit(), 1.0, \
            leaf.divergent_depth > 0

    def _go_parallel(self, queue: "_Queue") -> None:
        """Keep up to ``WINDOW`` leaves running on the executor, largest first, and decide
        each as it finishes (no generation waits for its slowest leaf); the leaves left
        unexamined stay in ``queue``."""
        from concurrent.futures import FIRST_COMPLETED, wait
        shipped = _PickledMap.of(self.F) if is_map(self.F) else self.F
        running: dict = {}                     # future -> the leaves it examines
        while queue or running:
            in_flight = sum(len(batch) for batch in running.values())
            while queue and in_flight < WINDOW and not self._stop(in_flight):
                # a few leaves per task once the queue is long: a task's round trip through
                # a scheduler (Dask's) costs more than a small leaf
                batch = [queue.pop() for _ in range(min(len(queue), _batch_size(len(queue)),
                                                        self.max_boxes - self.done - in_flight))]
                args = [(shipped,) + self._args(leaf)[1:] for leaf in batch]
                running[self.executor.submit(certify_leaves, args)] = batch
                in_flight += len(batch)
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                for leaf, result in zip(running.pop(future), future.result()):
                    queue.extend(self._decide(leaf, *result))

    def _decide(self, leaf: _Leaf, cert: Certificate, x_box, x_fixed, everywhere, word):
        self.done += 1
        self.bar.update()
        if cert.certified:
            self.leaves.append((leaf.theta, x_box, cert))
            self.volume += leaf.volume(self.widths)
            self.bar.set_postfix_str(f"coverage {self.volume:.1%}")
            return []
        divergent = math.isfinite(cert.lower) and cert.lower > 1
        word = word if word is not None else (cert.word if divergent else None)
        if everywhere and leaf.divergent_depth >= self.max_div:
            self.refused.append((leaf.theta, x_box if x_box is not None else leaf.x,
                                 cert.reason, word))
            return []
        children = _split(leaf, self.widths)
        for child in children:
            child.start = x_fixed if x_fixed is not None else leaf.start
            child.divergent_depth = leaf.divergent_depth + 1 if everywhere else 0
        if self.done + len(children) > self.max_boxes or not np.any(self.widths > 0):
            self.refused.append((leaf.theta, x_box if x_box is not None else leaf.x,
                                 cert.reason, word))
            return []
        return list(children)

    def result(self, root_t, root_x) -> RegionCertificate:
        rho = max((c.rho for _, _, c in self.leaves), default=math.nan)
        coverage = min(1.0, self.volume) if np.any(self.widths > 0) else \
            float(bool(self.leaves))
        return RegionCertificate(not self.refused and bool(self.leaves), rho, self.leaves,
                                 self.refused, 1.0 if not self.refused and self.leaves
                                 else coverage, self.done, time.monotonic() - self.t0,
                                 self.stopped, (root_t, root_x))
