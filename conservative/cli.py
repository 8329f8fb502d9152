"""Command line: ``conservative demo``, ``conservative jsr FILE``, ``conservative certify FILE``."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np

__all__ = ["main"]


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
        from conservative.examples import demo
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
