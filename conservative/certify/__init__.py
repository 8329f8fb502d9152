"""Is it a contraction? Certificates, joint spectral radii, and their norms.

The public names are re-exported here (``from conservative.certify import Certificate,
certify_contraction``); the modules are

``norms``
    the norm families as values: each finds itself, proves a bound (exactly or rigorously),
    describes and serialises itself;
``finders``
    the loop over the families (:data:`~conservative.certify.finders.FINDERS`);
``contraction``, ``jsr``, ``fixed_point``
    :func:`certify_contraction`, :func:`jsr`, :func:`certify_fixed_point`;
``targets``, ``maps``
    what is certified (finite sets, interval boxes, structured sets of kink slopes) and how a
    Map becomes one without forming dense matrices it does not need;
``rigorous``, ``sdp``, ``search``, ``polytope``, ``matrices``, ``scaling``, ``report``
    the proofs that scale, the one SDP builder, products, the invariant polytope, small
    matrix tools, float searches for cheap norms, and how results read.
"""

from .report import Verified
from .norms import (DiagonalQuadraticNorm, EuclideanNorm, ExtendedNorm, LiftedQuadraticNorm,
                    LyapunovNorm, Norm, PolytopeNorm, QuadraticNorm, StructuredQuadraticNorm,
                    WeightedInfinityNorm, norm_from_dict)
from .finders import FINDERS
from .targets import IntervalBox, MatrixSet, StructuredSet
from .search import product_lower_bound
from .contraction import Certificate, certify_contraction, own_jacobians
from .jsr import JSRResult, jsr
from .fixed_point import FixedPointCertificate, certify_fixed_point
from .services import attractor_norm, invertibility_on_hull, well_conditioned_norm
from .region import RegionCertificate, certify_region
from .counterexample import Counterexample, NoCounterexampleError, find_counterexample

__all__ = [
    "Verified",
    "Norm",
    "QuadraticNorm",
    "EuclideanNorm",
    "DiagonalQuadraticNorm",
    "LyapunovNorm",
    "StructuredQuadraticNorm",
    "WeightedInfinityNorm",
    "PolytopeNorm",
    "LiftedQuadraticNorm",
    "ExtendedNorm",
    "norm_from_dict",
    "FINDERS",
    "MatrixSet",
    "IntervalBox",
    "StructuredSet",
    "Certificate",
    "certify_contraction",
    "own_jacobians",
    "product_lower_bound",
    "JSRResult",
    "jsr",
    "FixedPointCertificate",
    "certify_fixed_point",
    "attractor_norm",
    "well_conditioned_norm",
    "invertibility_on_hull",
    "RegionCertificate",
    "certify_region",
    "Counterexample",
    "NoCounterexampleError",
    "find_counterexample",
]
