"""Pictures of a :class:`~conservative.certify.region.RegionCertificate` (matplotlib, imported
on use)."""

from __future__ import annotations

import numpy as np

from .report import format_word

__all__ = ["plot_region"]


def _flat(box):
    return np.ravel(np.asarray(box[0], dtype=float)), np.ravel(np.asarray(box[1], dtype=float))


def plot_region(reg, ax=None, *, labels: bool = True, dims=(0, 1)):
    """Certified leaves coloured by rho, refused ones grey (hatched: a divergent word).

    One parameter: leaves as intervals along the axis (rho on the vertical axis).
    Two or more: rectangles over the parameters ``dims``.
    """
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors
    from matplotlib.patches import Patch, Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    lo0, hi0 = _flat(reg.root[0])
    dim = int(np.sum(hi0 > lo0))
    rhos = [c.rho for _, _, c in reg.leaves]
    low = min(rhos, default=0.0)
    norm = colors.Normalize(vmin=max(0.0, low - 0.05 * (1 - low)), vmax=1.0)
    cmap = cm.viridis
    free = np.flatnonzero(hi0 > lo0)
    if dim <= 1:
        j = int(free[0]) if len(free) else 0
        for t, _, c in reg.leaves:
            lo, hi = _flat(t)
            ax.fill_between([lo[j], hi[j]], 0, c.rho, color=cmap(norm(c.rho)), lw=0)
        for t, _, reason, word in reg.refused:
            lo, hi = _flat(t)
            ax.axvspan(lo[j], hi[j], color="0.8" if word is None else "#d62728", alpha=0.5,
                       hatch=None if word is None else "//", lw=0)
        ax.set_xlim(lo0[j], hi0[j])
        ax.set_ylim(max(0.0, low - 0.1 * (1 - low)) if rhos else 0.0, 1.02)
        ax.set_xlabel(f"parameter {j}")
        ax.set_ylabel("certified rho (contraction factor)")
    else:
        i, j = (int(free[dims[0]]), int(free[dims[1]])) if len(free) > max(dims) else (0, 1)
        for t, _, c in reg.leaves:
            lo, hi = _flat(t)
            ax.add_patch(Rectangle((lo[i], lo[j]), hi[i] - lo[i], hi[j] - lo[j],
                                   facecolor=cmap(norm(c.rho)), edgecolor="none"))
        for t, _, reason, word in reg.refused:
            lo, hi = _flat(t)
            ax.add_patch(Rectangle((lo[i], lo[j]), hi[i] - lo[i], hi[j] - lo[j],
                                   facecolor="0.85" if word is None else "#f4b6b6",
                                   edgecolor="#d62728" if word is not None else "none",
                                   hatch="//" if word is not None else None, lw=0.3))
            big = (hi[i] - lo[i]) > 0.12 * (hi0[i] - lo0[i]) and \
                (hi[j] - lo[j]) > 0.08 * (hi0[j] - lo0[j])
            if labels and word is not None and big:
                ax.text(0.5 * (lo[i] + hi[i]), 0.5 * (lo[j] + hi[j]), format_word(word, 6),
                        ha="center", va="center", fontsize=7)
        ax.set_xlim(lo0[i], hi0[i])
        ax.set_ylim(lo0[j], hi0[j])
        ax.set_xlabel(f"parameter {i}")
        ax.set_ylabel(f"parameter {j}")
    sm = cm.ScalarMappable(norm=norm, cmap=cmap)
    ax.figure.colorbar(sm, ax=ax, label="certified rho")
    ax.legend(handles=[Patch(facecolor="#f4b6b6", edgecolor="#d62728", hatch="//",
                             label="refused: divergent word"),
                       Patch(facecolor="0.85", label="refused: undecided")],
              loc="lower right", fontsize=7, framealpha=0.9)
    ax.set_title(f"certify_region: {reg.coverage:.0%} certified, {reg.boxes} leaves")
    return ax
