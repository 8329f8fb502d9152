"""``cv.from_torch``: imported PyTorch programs against PyTorch and against the DSL twin.

Random programs of MLP / DEQ operations are generated from a seeded recipe, run by two backends
(PyTorch and the DSL). Away from kinks the imported map equals ``torch.func.jacfwd``; at kinks
its set equals the DSL twin's set, PyTorch's own derivative lies in the hull, and every
one-sided finite difference is the directional derivative of an element of the finite set.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import conservative as cv  # noqa: E402
from test_interop_jax import one_sided_differences_are_members, same_set  # noqa: E402

HERE = os.path.basename(__file__)
N, P = 4, 2
OPS = ("linear", "relu", "abs", "tanh", "sigmoid", "softplus", "leaky", "clamp", "maxt",
       "maximum", "where", "mul", "add", "div", "reshape", "sum", "amax", "tparam", "tmat")


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=float))


TORCH = SimpleNamespace(
    linear=lambda v, W, b: torch.nn.functional.linear(v, _t(W), _t(b)),
    matvec=lambda M, v: _t(M) @ v,
    relu=torch.relu, abs=torch.abs, tanh=torch.tanh, sigmoid=torch.sigmoid,
    softplus=torch.nn.functional.softplus,
    leaky=lambda v: torch.nn.functional.leaky_relu(v, 0.125),
    clamp=lambda v, lo, hi: torch.clamp(v, lo, hi),
    maximum=torch.maximum,
    where=lambda v, c: torch.where(v > c, v - c, 0.5 * (v - c)),
    reshape=lambda v: v.view(2, 2).t().reshape(4),
    sum=lambda v: v.sum(), amax=lambda v: v.amax())

DSL = SimpleNamespace(
    linear=lambda v, W, b: W @ v + b,
    matvec=lambda M, v: M @ v,
    relu=cv.relu, abs=cv.abs, tanh=cv.tanh, sigmoid=cv.sigmoid,
    softplus=lambda v: -cv.log(cv.sigmoid(-v)),
    leaky=lambda v: cv.maximum(v, 0.125 * v),
    clamp=lambda v, lo, hi: cv.clip(v, lo, hi),
    maximum=cv.maximum,
    where=lambda v, c: cv.where(v > c, v - c, 0.5 * (v - c)),
    reshape=lambda v: cv.reshape(cv.transpose(cv.reshape(v, (2, 2))), (4,)),
    sum=cv.sum, amax=cv.max)


def random_recipe(seed: int):
    """A seeded list of (op, args, constants); dyadic constants so grid points hit kinks."""
    rng = np.random.default_rng(seed)
    grid = lambda *s: rng.choice([-1.0, -0.5, 0.5, 1.0], size=s)  # noqa: E731
    recipe = [("tmat", (), {"U": grid(N, P) / 2})]
    for _ in range(int(rng.integers(4, 9))):
        op = OPS[rng.integers(len(OPS) - 2)]
        n_vals = len(recipe) + 1
        args = tuple(int(n_vals - 1 - min(rng.geometric(0.5) - 1, n_vals - 1)) for _ in range(2))
        k = {"W": grid(N, N) / 2, "b": grid(N) / 2, "c": float(rng.choice([-0.5, 0.0, 0.5])),
             "i": int(rng.integers(P)), "C": grid(N)}
        recipe.append((op, args, k))
    return recipe


def run(recipe, ops, x, theta):
    vals = [x]
    for op, args, k in recipe:
        a, b = (vals[i] for i in args) if args else (None, None)
        if op == "tmat":
            v = ops.matvec(k["U"], theta)
        elif op == "tparam":
            v = theta[k["i"]] * k["C"]
        elif op == "linear":
            v = ops.linear(a, k["W"], k["b"])
        elif op in ("relu", "abs", "tanh", "sigmoid", "softplus", "leaky", "reshape"):
            v = getattr(ops, op)(a)
        elif op == "clamp":
            v = ops.clamp(a, -0.5, 0.5 + abs(k["c"]))
        elif op == "maxt":
            v = ops.maximum(a, theta[k["i"]] + 0.0 * a)
        elif op == "maximum":
            v = ops.maximum(a, b + k["c"])
        elif op == "where":
            v = ops.where(a, k["c"])
        elif op == "mul":
            v = a * b
        elif op == "add":
            v = a + b - k["c"]
        elif op == "div":
            v = a / (1.0 + b * b)
        elif op == "sum":
            v = a + k["c"] * ops.sum(b)
        elif op == "amax":
            v = a + 0.5 * ops.amax(b)
        vals.append(v)
    return vals[-1] + 0.5 * vals[len(vals) // 2]


def _maps(seed):
    recipe = random_recipe(seed)
    torch_fn = lambda x, t: run(recipe, TORCH, x, t)  # noqa: E731
    F = cv.from_torch(torch_fn, (N,), (P,))
    G = cv.trace(lambda x, t: run(recipe, DSL, x, t), (N,), (P,))
    return recipe, torch_fn, F, G


def _torch_jac(fn, x, t):
    jx, jt = torch.func.jacfwd(fn, argnums=(0, 1))(_t(x), _t(t))
    return np.hstack([jx.detach().numpy(), jt.detach().numpy()])


SEEDS = list(range(12))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_programs_equal_torch_away_from_kinks(seed):
    recipe, fn, F, G = _maps(seed)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        x, t = rng.standard_normal(N), rng.standard_normal(P)
        if not F.jacobian(x, t, tol=1e-6).is_singleton:
            continue
        np.testing.assert_allclose(F(x, t), fn(_t(x), _t(t)).numpy(), rtol=1e-12, atol=1e-12)
        J = _torch_jac(fn, x, t)
        np.testing.assert_allclose(F.jacobian(x, t).vertices[0], J, rtol=1e-12,
                                   atol=1e-12 * max(1.0, np.abs(J).max()), err_msg=str(recipe))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_programs_at_kinks_match_the_dsl_and_contain_torch(seed):
    recipe, fn, F, G = _maps(seed)
    rng = np.random.default_rng(seed)
    found = 0
    for _ in range(30):
        x = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=N)
        t = rng.choice([-0.5, 0.0, 0.5], size=P)
        js = G.jacobian(x, t, hull=False, tol=1e-9)
        if not 1 < js.n_selections <= 1024:
            continue
        found += 1
        np.testing.assert_allclose(F(x, t), G(x, t), rtol=1e-12, atol=1e-12)
        assert same_set(F.jacobian(x, t, hull=False, tol=1e-9).vertices, js.vertices), recipe
        J = _torch_jac(fn, x, t)
        assert F.jacobian(x, t, tol=1e-9).contains(J, atol=1e-9), recipe
        assert one_sided_differences_are_members(F, x, t, rng), recipe
        if found == 2:
            break
    if not found:
        pytest.skip("no grid point on a kink")


# --- modules, sources and the usual layers ------------------------------------------------------

class DEQLayer(torch.nn.Module):
    """z = relu(W z + U theta + b), float32 parameters (converted by the import)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W = torch.nn.Linear(3, 3)
        self.U = torch.nn.Parameter(torch.randn(3, 2, generator=g))
        with torch.no_grad():
            self.W.weight.copy_(0.3 * torch.randn(3, 3, generator=g))

    def forward(self, z, theta):
        return torch.relu(self.W(z) + self.U @ theta)  # the module's line


def test_a_module_is_imported_and_left_untouched():
    layer = DEQLayer()
    F = cv.from_torch(layer, (3,), (2,))
    assert layer.W.weight.dtype == torch.float32          # the original is not converted
    z, t = np.array([0.2, -0.1, 0.4]), np.array([0.3, -0.2])
    ref = layer.double()(_t(z), _t(t)).detach().numpy()
    np.testing.assert_allclose(F(z, t), ref, rtol=1e-12)
    line = [i for i, l in enumerate(open(__file__).read().splitlines(), 1)
            if "# the module's line" in l][0]
    assert f"{HERE}:{line}" in str(F)


def test_printing_shows_the_function_lines():
    W = np.eye(3) / 2
    F = cv.from_torch(lambda x, t: torch.clamp(_t(W) @ x, -t, t), (3,), ())  # clamp line
    line = [i for i, l in enumerate(open(__file__).read().splitlines(), 1)
            if "# clamp line" in l][0]
    assert f"{HERE}:{line}" in str(F)


def test_certificates_equal_those_of_the_dsl_map():
    layer = DEQLayer().double()
    W = layer.W.weight.detach().numpy()
    b = layer.W.bias.detach().numpy()
    U = layer.U.detach().numpy()
    F = cv.from_torch(layer, (3,), (2,))
    G = cv.trace(lambda z, t: cv.relu(z @ W.T + b + U @ t), (3,), (2,))
    t = np.zeros(2)
    z = cv.fixed_point(G, np.zeros(3), t).x
    # put a ReLU exactly at its kink: shift the parameter so that its pre-activation is 0
    assert same_set(F.jacobian(z, t, hull=False, tol=1e-9).vertices,
                    G.jacobian(z, t, hull=False, tol=1e-9).vertices)
    cf = cv.certify_contraction(F, t, z)
    cg = cv.certify_contraction(G, t, z)
    assert cf.certified == cg.certified and cf.rho == cg.rho and cf.verified == cg.verified


def test_leaky_relu_softplus_and_where_sets():
    F = cv.from_torch(lambda x, t: torch.nn.functional.leaky_relu(x, 0.2)
                      + torch.nn.functional.softplus(x) * t, (), ())
    V = F.jacobian(0.0, 1.0, hull=False).vertices[:, 0, 0]
    assert same_set(V.reshape(-1, 1, 1), np.array([0.2 + 0.5, 1.0 + 0.5]).reshape(-1, 1, 1))
    G = cv.from_torch(lambda x, t: torch.where(x > t, x - t, 0.25 * (x - t)), (), ())
    assert same_set(G.jacobian(1.0, 1.0, hull=False).vertices,
                    np.array([[[1.0, -1.0]], [[0.25, -0.25]]]))


# --- refusals -----------------------------------------------------------------------------------

def test_unsupported_operation_names_it_and_its_line():
    with pytest.raises(cv.TracingError) as err:
        cv.from_torch(lambda x, t: torch.erf(x) + t, (2,), ())  # erf line
    line = [i for i, l in enumerate(open(__file__).read().splitlines(), 1)
            if "# erf line" in l][0]
    assert "erf" in str(err.value) and f"{HERE}:{line}" in str(err.value)


def test_discontinuous_programs_are_refused():
    for fn in (lambda x, t: torch.sign(x) + t,
               lambda x, t: torch.where(x > 0, 1.0, 0.0) * t + x * 0.0,
               lambda x, t: torch.floor(x) + t):
        with pytest.raises(cv.DiscontinuityError):
            F = cv.from_torch(fn, (3,), ())
            F(np.zeros(3), 1.0)


def test_sign_times_relu_of_abs_is_a_soft_threshold():
    F = cv.from_torch(lambda x, t: torch.sign(x) * torch.relu(torch.abs(x) - t), (3,), ())
    assert [s.prim.name for s in F.program.steps if s.prim.pieces is not None] == \
        ["soft_threshold"]


def test_python_control_flow_and_mutation_are_refused():
    def branchy(x, t):
        if x.sum() > 0:
            return x
        return -x

    with pytest.raises(cv.TracingError, match="torch.where"):
        cv.from_torch(branchy, (2,), ())

    class Normalised(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm1d(2)

        def forward(self, x, t):
            return self.bn(x * t)

    with pytest.raises(cv.TracingError, match="batch_norm"):
        cv.from_torch(Normalised().train(), (3, 2), ())
