"""Rule blocks of the primitives, one block per primitive; importing this package registers them."""

from . import matrix, nonsmooth, smooth, structural  # noqa: F401  (import registers the blocks)
