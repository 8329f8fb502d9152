"""Rule blocks of the primitives, one block per primitive; importing this package registers them.

The handles (``relu_p``, ``matmul_p``, ...) are what the DSL binds; ``conservative.extend`` is
how a new primitive is written.
"""

from .matrix import logdet_prox_p, solve_p
from .nonsmooth import abs_p, clip_p, maximum_p, minimum_p, relu_p, select_p, soft_threshold_p
from .smooth import (add_p, cos_p, div_p, exp_p, huber_p, log_p, mul_p, neg_p, pow_p,
                     sigmoid_p, sin_p, sqrt_p, sub_p, tanh_p)
from .structural import (broadcast_to_p, concatenate_p, const_p, getitem_p, input_p, matmul_p,
                         reshape_p, sum_p, transpose_p)

__all__ = [
    "add_p", "sub_p", "mul_p", "div_p", "neg_p", "pow_p", "exp_p", "log_p", "sqrt_p", "tanh_p",
    "sigmoid_p", "sin_p", "cos_p", "huber_p",
    "relu_p", "abs_p", "maximum_p", "minimum_p", "soft_threshold_p", "clip_p", "select_p",
    "input_p", "const_p", "broadcast_to_p", "reshape_p", "transpose_p", "getitem_p", "sum_p",
    "matmul_p", "concatenate_p",
    "logdet_prox_p", "solve_p",
]
