"""The README's Python examples run as written (a newcomer's first contact)."""

import pathlib
import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    namespace = {}                         # nothing injected: the blocks run as written
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)
    assert namespace["cert"].certified
    assert namespace["att"].hausdorff_bound <= 1e-6
    assert namespace["ce"].growth > 1
    # the hypergradient block: dL/dlam = grad_loss^T dw*/dlam, against the implicit derivative
    J_imp = namespace["J_imp"].vertices[0]
    g, grad_loss = float(namespace["g"]), namespace["grad_loss"]
    assert abs(g - float(grad_loss @ J_imp[:, 0])) < 1e-8 * max(1.0, abs(g))
