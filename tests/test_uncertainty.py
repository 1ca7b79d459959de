import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.stats

import odefit

RATE, Y0, T1, SIGMA = 1.3, 2.0, 2.0, 0.01
WEIGHTS = {"residual": 100.0}


def _decay(t, y, args):
    rate, _ = args
    return -rate * y


def _data(seed: int = 0, n: int = 20):
    ts = jnp.linspace(0.0, T1, n)
    clean = Y0 * jnp.exp(-RATE * ts)
    return odefit.Observations(ts, clean + SIGMA * jr.normal(jr.key(seed), (n,)))


def _problem(guess: float = 1.0):
    return odefit.IVP(
        _decay,
        t0=0.0,
        t1=T1,
        y0=Y0,
        args=(odefit.Unknown(guess, positive=True), None),
    )


def _fit(problem, data, key):
    model = odefit.PINN(problem, width=12, depth=2, key=key)
    return odefit.fit(
        problem,
        model,
        steps=40,
        observations=data,
        weights=WEIGHTS,
        optimizer=odefit.LevenbergMarquardt(points=48),
        key=jr.key(1),
        progress=False,
    )


@pytest.fixture(scope="module")
def decay_fit():
    data = _data()
    return _fit(_problem(), data, jr.key(0)), data


def _analytic(data):
    """The classical answer for y = Y0 exp(-k t), by hand: Gauss-Newton on the
    closed form in log k, Jacobian by central finite differences."""
    ts, ys = np.asarray(data.ts), np.asarray(data.ys)

    def model(rho):
        return Y0 * np.exp(-np.exp(rho) * ts)

    rho = math.log(RATE)
    for _ in range(50):
        h = 1e-6
        jac = (model(rho + h) - model(rho - h)) / (2 * h)
        rho -= jac @ (model(rho) - ys) / (jac @ jac)
    misfit = model(rho) - ys
    jac = (model(rho + 1e-6) - model(rho - 1e-6)) / 2e-6
    sigma2 = misfit @ misfit / (ts.size - 1)
    return math.exp(rho), math.sqrt(sigma2 / (jac @ jac)), math.sqrt(sigma2)


def test_classical_matches_closed_form():
    data = _data()
    rate, se_log, sigma = _analytic(data)
    out = odefit.classical_intervals(_problem(), data)
    assert out.method == "classical" and out.labels == ("[0]",)
    np.testing.assert_allclose(out.estimate, [rate], rtol=1e-7)
    np.testing.assert_allclose(out.noise, sigma, rtol=1e-6)
    # The delta method: se(k) = k se(log k).
    np.testing.assert_allclose(out.standard_error, [rate * se_log], rtol=1e-5)
    t = scipy.stats.t.ppf(0.975, 19)
    np.testing.assert_allclose(out.lower, [rate * math.exp(-t * se_log)], rtol=1e-5)
    np.testing.assert_allclose(out.upper, [rate * math.exp(t * se_log)], rtol=1e-5)
    assert out.dof == 19 and out.effective_parameters == 1


def test_laplace_matches_classical(decay_fit):
    result, data = decay_fit
    rate, se_log, sigma = _analytic(data)
    out = odefit.parameter_intervals(
        result, data, collocation=odefit.Grid(48), weights=WEIGHTS
    )
    assert out.method == "laplace" and out.level == 0.95
    # The PINN's estimate is the classical one to a small fraction of its error bar.
    assert abs(float(out.estimate[0]) - rate) < 0.05 * rate * se_log
    # The same error bar, to within the few extra effective parameters of the
    # network (which the noise estimate accounts for).
    ratio = float(out.standard_error[0]) / (rate * se_log)
    assert 0.95 < ratio < 1.3, ratio
    assert 1.0 <= out.effective_parameters < 5.0
    np.testing.assert_allclose(out.noise, sigma, rtol=0.15)
    assert out.covers([rate]).all() and out.covers([RATE]).shape == (1,)
    assert out.lower[0] < out.estimate[0] < out.upper[0]
    np.testing.assert_allclose(out.correlation, [[1.0]], rtol=1e-12)
    assert "laplace" in out.summary() and "[0]" in out.summary()


def test_known_noise_and_level(decay_fit):
    result, data = decay_fit
    kwargs = dict(collocation=odefit.Grid(48), weights=WEIGHTS)
    known = odefit.parameter_intervals(result, data, noise=SIGMA, **kwargs)
    assert math.isinf(known.dof) and float(known.noise) == SIGMA
    wide = odefit.parameter_intervals(result, data, level=0.99, noise=SIGMA, **kwargs)
    np.testing.assert_allclose(wide.standard_error, known.standard_error)
    # Normal quantiles: the log-widths scale as z(0.995) / z(0.975).
    ratio = np.log(wide.upper / wide.lower) / np.log(known.upper / known.lower)
    np.testing.assert_allclose(ratio, 2.5758293 / 1.9599640, rtol=1e-6)


def test_ensemble_member_and_checkpoint(tmp_path):
    data = _data(seed=1)
    problem = _problem()
    models = [odefit.PINN(problem, width=12, depth=2, key=jr.key(k)) for k in (3, 4)]
    ensemble = odefit.fit_ensemble(
        problem,
        models,
        steps=40,
        observations=data,
        weights=WEIGHTS,
        optimizer=odefit.LevenbergMarquardt(points=48),
        key=jr.key(5),
        progress=False,
    )
    kwargs = dict(collocation=odefit.Grid(48), weights=WEIGHTS)
    with pytest.raises(TypeError, match=r"result\[i\]"):
        odefit.parameter_intervals(ensemble, data, **kwargs)
    first = odefit.parameter_intervals(ensemble[0], data, **kwargs)
    second = odefit.parameter_intervals(ensemble[1], data, **kwargs)
    reference = odefit.classical_intervals(problem, data)
    for out in (first, second):
        ratio = float(out.standard_error[0] / reference.standard_error[0])
        assert 0.95 < ratio < 1.3, ratio
        assert abs(float(out.estimate[0] - reference.estimate[0])) < (
            0.1 * float(reference.standard_error[0])
        )
    path = tmp_path / "member.ckpt"
    odefit.save(path, ensemble[1])
    loaded = odefit.load(path, problem, models[1])
    again = odefit.parameter_intervals(loaded, data, **kwargs)
    for name in ("estimate", "covariance", "lower", "upper", "noise"):
        np.testing.assert_allclose(
            getattr(again, name), getattr(second, name), rtol=1e-10
        )


@pytest.mark.slow
def test_array_unknown_labels_and_order():
    def field(t, y, args):
        return -args["rates"] * y

    ts = jnp.linspace(0.0, 1.0, 15)
    clean = jnp.stack([jnp.exp(-0.5 * ts), 2 * jnp.exp(-2.0 * ts)], axis=1)
    data = odefit.Observations(ts, clean + 0.01 * jr.normal(jr.key(2), clean.shape))
    problem = odefit.IVP(
        field,
        0.0,
        1.0,
        jnp.array([1.0, 2.0]),
        args={"rates": odefit.Unknown(jnp.array([0.4, 1.5]))},
    )
    out = odefit.classical_intervals(problem, data)
    assert out.labels == ("['rates'][0]", "['rates'][1]")
    np.testing.assert_allclose(out.estimate, [0.5, 2.0], rtol=0.05)
    assert out.covariance.shape == (2, 2)
    np.testing.assert_allclose(out.covariance, out.covariance.T)


def test_errors(decay_fit):
    result, data = decay_fit
    with pytest.raises(ValueError, match="no `odefit.Unknown`"):
        plain = odefit.IVP(_decay, 0.0, T1, Y0, args=(RATE, None))
        model = odefit.PINN(plain, width=8, depth=1, key=jr.key(0))
        fitted = odefit.fit(plain, model, steps=2, key=jr.key(1), progress=False)
        odefit.parameter_intervals(fitted, data)
    with pytest.raises(ValueError, match="`observations` is None"):
        odefit.parameter_intervals(result, None)
    with pytest.raises(TypeError, match="`result` must be an odefit.FitResult"):
        odefit.parameter_intervals(result.model, data)
    with pytest.raises(ValueError, match="`level`"):
        odefit.parameter_intervals(result, data, level=1.5)
    with pytest.raises(ValueError, match="`noise`"):
        odefit.parameter_intervals(result, data, noise=-1.0)
    with pytest.raises(ValueError, match="`prior_precision`"):
        odefit.parameter_intervals(result, data, prior_precision=0.0)
    with pytest.raises(TypeError, match="`collocation`"):
        odefit.parameter_intervals(result, data, collocation=48)
    with pytest.raises(ValueError, match="weight 0"):
        odefit.parameter_intervals(result, data, weights={"data": 0.0})
    with pytest.raises(ValueError, match="observations.ys"):
        bad = odefit.Observations(data.ts, jnp.stack([data.ys, data.ys], axis=1))
        odefit.parameter_intervals(result, bad)
    with pytest.raises(ValueError, match="no `odefit.Unknown`"):
        odefit.classical_intervals(odefit.IVP(_decay, 0.0, T1, Y0, (RATE, None)), data)
    with pytest.raises(TypeError, match="IVP or odefit.SecondOrderIVP"):
        bvp = odefit.BVP(
            lambda t, y, dy, k: -k * y, 0.0, 1.0, 0.0, 1.0, args=odefit.Unknown(1.0)
        )
        odefit.classical_intervals(bvp, data)
    with pytest.raises(TypeError, match="`observations` must be"):
        odefit.classical_intervals(_problem(), (data.ts, data.ys))


@pytest.mark.slow
def test_unidentifiable_parameter_is_reported():
    # Only the product a * b enters the equation: no data can separate them.
    def field(t, y, args):
        a, b = args
        return -a * b * y

    problem = odefit.IVP(
        field, 0.0, T1, Y0, args=(odefit.Unknown(1.0), odefit.Unknown(1.2))
    )
    with pytest.raises(ValueError, match="not identifiable"):
        odefit.classical_intervals(problem, _data(), max_steps=50)
