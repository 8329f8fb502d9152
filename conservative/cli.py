"""Command line: ``conservative demo``, ``conservative jsr FILE``, ``conservative certify FILE``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

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


def demo(out_dir: str | None = "conservative-demo") -> int:
    """The main job on built-in data: certify, differentiate, find the limit set, break it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import conservative as cv
    from conservative import plotting

    X, y = cv.datasets.lasso_small()
    n, p = X.shape
    F = cv.algorithms.forward_backward_lasso(X, y)
    print("conservative demo: forward-backward for the Lasso on the built-in data "
          f"({n} samples, {p} features)\n")
    print("  minimize 1/2 ||X w - y||^2 + lam ||w||_1;  w <- soft_threshold(w - step grad, "
          "step lam)\n")
    print(F)
    names = [f"w{i}" for i in range(p)]

    # 1. a smooth fixed point: certify, then watch the derivative converge at the certified rate
    lam = 5.0
    fp = cv.fixed_point(F, np.zeros(p), lam)
    w = fp.x
    support = np.nonzero(np.abs(w) > 1e-10)[0]
    print(f"\n1. At lam = {lam}: the fixed point after {fp.steps} steps has support "
          f"{support.tolist()} (residual {fp.residual:.1e}).")
    js = F.jacobian(w, lam)
    _print_set("conservative Jacobian at the fixed point", js, names, ["lam"])
    cert = cv.certify_contraction(F, theta=lam, x=w)
    print(f"    contraction certificate: certified = {cert.certified}, rho = {cert.rho:.4f} "
          f"in the norm {cert.norm}, final check: {cert.verified}")
    J_bar = cv.implicit_jacobian(F, lam, w).vertices[0]
    closed = np.zeros((p, 1))
    closed[support, 0] = -np.linalg.solve(X[:, support].T @ X[:, support], np.sign(w[support]))
    print(f"    implicit dw/dlam = {np.round(J_bar.ravel(), 5).tolist()}\n"
          f"    closed form -(X_S^T X_S)^-1 sign(w_S) agrees to "
          f"{np.max(np.abs(J_bar - closed)):.1e}")
    steps = 120
    _, Js = cv.piggyback(F, np.zeros(p), lam, steps)
    fpad = cv.fpad(F, lam, w, steps)
    k = np.arange(steps + 1)
    errors = {"piggyback (unrolled AD)": np.linalg.norm((Js - J_bar).reshape(steps + 1, -1),
                                                        axis=1),
              "fixed-point AD": np.linalg.norm((fpad - J_bar).reshape(steps + 1, -1), axis=1)}
    if cert.certified:
        errors[f"rho^k, rho = {cert.rho:.3f} (certified)"] = \
            errors["fixed-point AD"][0] * cert.rho ** k
    print(f"    after {steps} steps: piggyback error {errors['piggyback (unrolled AD)'][-1]:.1e}, "
          f"FPAD error {errors['fixed-point AD'][-1]:.1e}")

    # 2. a kink: the set, the attractor of all AD runs, and the implicit set
    lam_max = float(np.max(np.abs(X.T @ y)))
    first = int(np.argmax(np.abs(X.T @ y)))
    print(f"\n2. At w = 0 and lam = lam_max = ||X^T y||_inf = {lam_max:.4f}, feature {first} "
          "sits exactly on the threshold: a kink.")
    js0 = F.jacobian(np.zeros(p), lam_max)
    _print_set("conservative Jacobian at the kink", js0, names, ["lam"])
    print("    An AD framework returns one of these elements silently (a soft-threshold written "
          "as sign(z) relu(|z| - t)\n    gives the zero piece); conservative returns the whole "
          "set, so you see that the derivative is not\n    determined there.")
    att = cv.attractor(F, lam_max, np.zeros(p), hull=False)
    imp = cv.implicit_jacobian(F, lam_max, np.zeros(p), hull=False).vertices
    vals = att.intervals
    print(f"    attractor of every piggyback run (finite selections): dimension {att.dimension}, "
          f"{len(vals)} intervals of dw{first}/dlam in [{vals[0, 0]:.5f}, {vals[-1, 1]:.5f}], "
          f"Hausdorff error <= {att.hausdorff_bound:.1e};\n"
          f"    implicit set: dw{first}/dlam in {np.round(imp[:, first, 0], 5).tolist()} "
          "(the one-sided derivatives): the attractor is larger.")

    # 3. momentum: iterates converge, derivatives diverge
    ce = cv.examples.momentum_divergence()
    print("\n3. " + repr(ce).replace("\n", "\n   "))
    bracket = cv.jsr(ce.matrices)
    print(f"   joint spectral radius of the two Jacobians: [{bracket.lower:.6f}, "
          f"{bracket.upper:.6f}] (word {bracket.word})")
    try:
        cv.attractor(ce.map, ce.theta, ce.x0)
    except cv.NotContractingError as exc:
        print(f"   cv.attractor refuses: no contraction (lower bound {exc.lower:.4f}).")

    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        ax = plotting.plot_convergence(errors)
        ax.set_title("Lasso at lam = 5: ||J_k - J*|| (k rho^k vs rho^k)")
        ax.figure.savefig(os.path.join(out_dir, "convergence.png"), dpi=110)
        ax = plotting.plot_attractor(att, implicit=imp, entry=(first, 0))
        ax.set_title(f"Lasso at lam_max: attractor of dw{first}/dlam (bars), implicit set (diamonds)")
        ax.figure.savefig(os.path.join(out_dir, "attractor.png"), dpi=110)
        _, Jm = ce.run(60)
        fig, axm = plt.subplots()
        axm.semilogy(np.linalg.norm(Jm.reshape(61, -1), axis=1), label="||J_k|| (piggyback)")
        axm.semilogy(ce.growth ** np.arange(61), "--", label=f"{ce.growth:.4f}^k")
        axm.set_xlabel("k")
        axm.legend()
        axm.set_title("Heavy-ball at a kink: iterates fixed, derivatives diverge")
        fig.savefig(os.path.join(out_dir, "momentum.png"), dpi=110)
        plt.close("all")
        print(f"\nFigures written to {os.path.abspath(out_dir)}: convergence.png, "
              "attractor.png, momentum.png")
    return 0


class InputFileError(Exception):
    """The matrices file cannot be read (missing, not JSON, not .npy)."""


def _load_matrices(path: str):
    """The file's content as nested lists or an array; the library converts and checks it
    (so ragged, complex or non-finite data get the library's own error)."""
    try:
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        with open(path) as f:
            data = json.load(f)
    except OSError as exc:
        raise InputFileError(f"cannot read {path!r} ({exc.strerror or exc}); pass the path "
                              "of an existing .json or .npy file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path!r} is not valid JSON ({exc}); write the matrices as a "
                              "list of k square matrices, e.g. [[[0.5, 0], [0, 0.5]]], or "
                              '{"matrices": ...}') from None
    except ValueError as exc:           # .npy: not an array file, or pickled objects
        raise InputFileError(f"{path!r} is not a NumPy .npy array file ({exc})") from None
    if isinstance(data, dict):
        if "matrices" not in data:
            raise InputFileError(f"{path!r} holds a JSON object without a 'matrices' key; "
                                  'write {"matrices": [[[...]]]} or the list itself')
        data = data["matrices"]
    return data


def _report_error(command: str, exc: Exception, as_json: bool) -> int:
    """One clear line on stderr; with --json also a JSON object on stdout. Exit code 2."""
    message = str(exc)
    print(f"conservative {command}: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": type(exc).__name__, "command": command,
                          "message": message}, indent=2))
    return 2


def main(argv: list[str] | None = None) -> int:
    from conservative import __version__
    parser = argparse.ArgumentParser(
        prog="conservative",
        description="Conservative Jacobians of nonsmooth iterative algorithms.")
    parser.add_argument("--version", action="version", version=f"conservative {__version__}")
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
        with warnings.catch_warnings():
            # a command-line user gets the result or one clear error, not numpy's warnings
            warnings.simplefilter("ignore", RuntimeWarning)
            with np.errstate(all="ignore"):
                result = cv.jsr(mats) if args.command == "jsr" else \
                    cv.certify_contraction(mats)
    except (InputFileError, cv.ConservativeError) as exc:
        return _report_error(args.command, exc, args.json)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result)
    if args.command == "certify":
        return 0 if result.certified else 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
