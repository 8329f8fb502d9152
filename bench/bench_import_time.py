"""``import conservative`` in a fresh interpreter: median wall time of 7 runs, against numpy.

Prints the median time of a new process that runs ``import conservative``, of one that runs
``import numpy`` (the floor: the package needs numpy), and their difference. Target (issue 14):
``import conservative`` under 0.5 s. ``python -X importtime -c "import conservative"`` shows
where the time goes.

    python bench/bench_import.py
"""

import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def median_start(code: str, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    package = median_start("import conservative")
    floor = median_start("import numpy")
    print(f"import conservative: {package:.3f} s (median of 7 fresh processes)")
    print(f"import numpy:        {floor:.3f} s")
    print(f"the package's own share: {package - floor:.3f} s; target: total < 0.5 s")


if __name__ == "__main__":
    main()
