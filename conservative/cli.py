"""Command line: ``conservative demo``, ``conservative jsr FILE``, ``conservative certify FILE``."""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

__all__ = ["main"]


def _print_set(title: str, js, state_names, param_names) -> None:
    print(f"  {title}: {js}")
    if js.is_singleton:
        print("    a single classical Jacobian: the map is differentiable here.")
        return
    verts = js.vertices
    print(f"    {len(verts)} distinct elements [A B]; they differ in rows:")
    spread = np.ptp(verts, axis=0)
    for i in np.nonzero(spread.max(axis=1) > 0)[0]:
        row_b = ", ".join(f"{v:+.4f}" for v in verts[:, i, len(state_names):].ravel())
        print(f"    row {state_names[i]}: d/d{param_names[0]} takes the values {row_b}")


def demo(out_dir: str | None = None) -> int:
    """The main job on built-in data: trace, differentiate, and explain."""
    import conservative as cv

    X, y = cv.datasets.lasso_small()
    n, p = X.shape
    F = cv.algorithms.forward_backward_lasso(X, y)
    print("conservative demo: forward-backward for the Lasso on the built-in data "
          f"({n} samples, {p} features)\n")
    print("  minimize 1/2 ||X w - y||^2 + lam ||w||_1;  w <- soft_threshold(w - step grad, "
          "step lam)\n")
    print(F)
    names = [f"w{i}" for i in range(p)]

    lam = 5.0
    fp = cv.fixed_point(F, np.zeros(p), lam)
    w = fp.x
    support = np.nonzero(np.abs(w) > 1e-10)[0]
    print(f"\n1. At lam = {lam}: the fixed point after {fp.steps} steps has support "
          f"{support.tolist()} (residual {fp.residual:.1e}).")
    js = F.jacobian(w, lam)
    _print_set("conservative Jacobian at the fixed point", js, names, ["lam"])
    B = js.default[:, p:]
    print(f"    dw/dlam through one step: {np.round(B.ravel(), 4).tolist()}")

    lam_max = float(np.max(np.abs(X.T @ y)))
    first = int(np.argmax(np.abs(X.T @ y)))
    print(f"\n2. At w = 0 and lam = lam_max = ||X^T y||_inf = {lam_max:.4f}, feature {first} "
          "sits exactly on the threshold: a kink.")
    js0 = F.jacobian(np.zeros(p), lam_max)
    _print_set("conservative Jacobian at the kink", js0, names, ["lam"])
    print("    An AD framework returns one of these elements silently (a soft-threshold written "
          "as sign(z) relu(|z| - t)\n    gives the zero piece); conservative returns the whole "
          "set, so you see that the derivative is not\n    determined there.")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        print(f"\n(figures are written to {out_dir} by later stages of the demo)")
    return 0


def _load_matrices(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, dict):
        data = data.get("matrices", data)
    return np.asarray(data, dtype=float)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="conservative",
        description="Conservative Jacobians of nonsmooth iterative algorithms.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="the main job on built-in data")
    p_demo.add_argument("--out", default="conservative-demo",
                        help="folder for the figures (default: ./conservative-demo)")
    for name, text in (("jsr", "joint spectral radius bounds of a set of matrices"),
                       ("certify", "contraction certificate for a set of matrices")):
        p = sub.add_parser(name, help=text)
        p.add_argument("file", help="matrices (k, n, n) as JSON (a list, or {'matrices': ...}) "
                                    "or .npy")
        p.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.out)
    import conservative as cv
    try:
        mats = _load_matrices(args.file)
        result = cv.jsr(mats) if args.command == "jsr" else cv.certify_contraction(mats)
    except (OSError, ValueError, cv.ConservativeError) as exc:
        print(f"conservative {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result)
    if args.command == "certify":
        return 0 if result.certified else 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
