"""conservative: do the derivatives of your nonsmooth iterative algorithm converge, and to what?

Write the update map of an algorithm with the DSL, trace it with :func:`trace`, and ask for
conservative Jacobians, derivative iterations, attractors and contraction certificates.

>>> import numpy as np, conservative as cv
>>> F = cv.trace(lambda x, t: cv.relu(x - t), (3,), ())
>>> F(np.array([-1.0, 0.5, 2.0]), 0.5)
array([0. , 0. , 1.5])
"""

from .errors import (ConservativeError, DiscontinuityError, InputError, NonFiniteError,
                     NotContractingError, NotConvergedError, SetTooLargeError, ShapeError,
                     SingularJacobianError, SolverError, SymbolicBoolError, TracingError,
                     UndecidedError)
from .sets import JacobianSet
from .interval import Interval, IntervalMatrix
from .distances import excess, hausdorff
from .dsl import (Condition, Sym, abs, clip, concatenate, cos, dot, exp, group_soft_threshold,
                  huber, log, matmul, max, maximum, mean, min, minimum, relu, reshape, sigmoid,
                  sin, soft_threshold, sqrt, square, stack, sum, tanh, transpose, where)
from .map import Map, trace
from .fixed_point_set import FixedPointEnclosure, fixed_point_enclosure
# the old module paths (one-release shims) are loaded first: `iterate` and `jsr` are both a shim
# module and a function, and the function must be what `cv.iterate` and `cv.jsr` name
from . import ifs, implicit, iterate, picard  # noqa: F401,E402
from . import jsr as jsr_module, verify as verify_module  # noqa: F401,E402
from .certify import (Certificate, Counterexample, FixedPointCertificate, JSRResult,
                      NoCounterexampleError, RegionCertificate, certify_contraction,
                      certify_fixed_point, certify_region, find_counterexample, jsr)
del jsr_module, verify_module
from .derivatives import (Attractor, FixedPointResult, attractor, fixed_point, fpad, fpad_vjp,
                          implicit_jacobian, invertible_on_hull, iterate, one_step, piggyback,
                          piggyback_sets, piggyback_vjp)
from . import algorithms, datasets, examples, linalg, symbolic
from .interop import from_jax, from_torch

__all__ = [
    "ConservativeError",
    "DiscontinuityError",
    "InputError",
    "NonFiniteError",
    "NotContractingError",
    "NotConvergedError",
    "SetTooLargeError",
    "ShapeError",
    "SingularJacobianError",
    "SolverError",
    "SymbolicBoolError",
    "TracingError",
    "UndecidedError",
    "JacobianSet",
    "Interval",
    "IntervalMatrix",
    "excess",
    "hausdorff",
    "Condition",
    "Sym",
    "abs",
    "clip",
    "concatenate",
    "cos",
    "dot",
    "exp",
    "group_soft_threshold",
    "huber",
    "log",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "relu",
    "reshape",
    "sigmoid",
    "sin",
    "soft_threshold",
    "sqrt",
    "square",
    "stack",
    "sum",
    "tanh",
    "transpose",
    "where",
    "Map",
    "trace",
    "FixedPointResult",
    "fixed_point",
    "iterate",
    "FixedPointEnclosure",
    "fixed_point_enclosure",
    "JSRResult",
    "jsr",
    "Certificate",
    "certify_contraction",
    "Attractor",
    "attractor",
    "piggyback",
    "piggyback_sets",
    "piggyback_vjp",
    "fpad",
    "fpad_vjp",
    "implicit_jacobian",
    "invertible_on_hull",
    "one_step",
    "FixedPointCertificate",
    "certify_fixed_point",
    "RegionCertificate",
    "certify_region",
    "from_jax",
    "from_torch",
    "algorithms",
    "datasets",
    "examples",
    "linalg",
    "symbolic",
    "Counterexample",
    "NoCounterexampleError",
    "find_counterexample",
    "plotting",
]

__version__ = "0.1.0"


def __getattr__(name):
    # matplotlib is imported only when pictures are asked for
    if name == "plotting":
        import importlib
        return importlib.import_module(".plotting", __name__)
    raise AttributeError(f"module 'conservative' has no attribute {name!r}")
