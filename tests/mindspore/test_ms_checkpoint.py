"""``RMSProp.load_state_per_parameter`` refuses state that does not fit (issue #17), in both state layouts
and on the fallback path: values a state dtype cannot hold (1e300 into float32, 1e5 into float16), NaN
and infinities, negative mean squares, transposed shapes, and a centered optimizer's state loaded into a
plain one. Every refusal names the entry and leaves every buffer unchanged; what fits loads exactly."""

from __future__ import annotations

import numpy as np
import pytest

from mindspore import Parameter, ParameterTuple, Tensor, nn

from rmsprop_ops.mindspore import RMSProp, _fallback

pytestmark = pytest.mark.mindspore


class _Net(nn.Cell):
    """A matrix (transposable), a vector and a float64 vector (or one of ``dtype``)."""

    def __init__(self, dtype, last_dtype):
        super().__init__()
        self.w = ParameterTuple([Parameter(Tensor(np.ones((2, 3), dtype)), name="a.w"),
                                 Parameter(Tensor(np.ones(5, dtype)), name="b.w"),
                                 Parameter(Tensor(np.ones(4, last_dtype)), name="c.w")])


def _opt(flat, centered=False, dtype=np.float32, last_dtype=np.float64):
    net = _Net(dtype, last_dtype)
    opt = RMSProp(net.trainable_params(), learning_rate=0.01, momentum=0.9, centered=centered, flat_state=flat)
    opt(tuple(Tensor(np.full(p.shape, 0.5, p.asnumpy().dtype)) for p in net.trainable_params()))
    return opt


def _with(state, name, value):
    out = dict(state)
    out[name] = value
    return out


# (id, entry to change, its new value, exception, message fragment); None: the load must succeed and hold it.
VALUE_CASES = [
    ("nan", "moment.a.w", np.full((2, 3), np.nan, np.float32), ValueError, "must hold finite values"),
    ("inf", "mean_square.b.w", np.full(5, np.inf, np.float32), ValueError, "but got inf (element 0)"),
    ("minus-inf-last-element", "moment.b.w", np.array([0, 0, 0, 0, -np.inf], np.float64), ValueError,
     "but got -inf (element 4)"),
    ("1e300-into-float32", "moment.a.w", np.full((2, 3), 1e300), ValueError,
     "fit the state's dtype Float32 (|v| <= 3.40282e+38), but got 1e+300 (element 0)"),
    ("3.5e38-into-float32", "mean_square.b.w", np.full(5, 3.5e38), ValueError, "Float32"),
    ("3e38-into-float32", "mean_square.b.w", np.full(5, 3e38), None, None),
    ("1e300-into-float64", "moment.c.w", np.full(4, 1e300), None, None),
    ("negative-mean-square", "mean_square.a.w", np.full((2, 3), -1e-3, np.float32), ValueError,
     "must hold values >= 0 (a mean of squares), but got -0.001"),
    ("negative-moment", "moment.a.w", np.full((2, 3), -1e-3, np.float32), None, None),
    ("transposed", "mean_square.a.w", np.ones((3, 2), np.float32), ValueError,
     "must have the shape of parameter 'a.w' (2, 3), but got (3, 2)"),
    ("float16-values", "moment.b.w", np.full(5, 0.25, np.float16), None, None),
]


@pytest.mark.parametrize("flat", [False, True], ids=["per-param-state", "flat-state"])
@pytest.mark.parametrize("case", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_values_that_do_not_fit_are_refused_before_any_write(flat, case):
    _, name, value, exc, match = case
    opt = _opt(flat)
    saved = opt.state_per_parameter()
    # Every other entry changes too, so that a load that wrote before refusing would show.
    state = {k: (v + 1).astype(v.dtype) for k, v in saved.items()}
    state[name] = value
    if exc is None:
        assert sorted(opt.load_state_per_parameter(state)) == sorted(saved)
        now = opt.state_per_parameter()
        np.testing.assert_array_equal(now[name], value.astype(now[name].dtype))
        return
    with pytest.raises(exc, match=match.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")) as info:
        opt.load_state_per_parameter(state)
    assert f"state['{name}']" in str(info.value)
    after = opt.state_per_parameter()
    assert all(np.array_equal(after[k], saved[k]) for k in saved)


@pytest.mark.parametrize("flat", [False, True], ids=["per-param-state", "flat-state"])
def test_a_centered_optimizers_state_is_refused_by_a_plain_one(flat):
    centered = _opt(flat, centered=True).state_per_parameter()
    plain = _opt(flat)
    saved = plain.state_per_parameter()
    with pytest.raises(ValueError, match=r"holds 'mean_grad\.a\.w', the state of a centered RMSProp"):
        plain.load_state_per_parameter(centered)
    assert all(np.array_equal(plain.state_per_parameter()[k], saved[k]) for k in saved)
    # strict=False loads what this optimizer keeps and ignores the mean gradients.
    loaded = plain.load_state_per_parameter(centered, strict=False)
    assert sorted(loaded) == sorted(saved)
    now = plain.state_per_parameter()
    assert all(np.array_equal(now[k], centered[k]) for k in saved)


def test_the_fallback_path_checks_against_its_16_bit_state(monkeypatch):
    # MindSpore's own ops keep float16 params' state in float16, so the limit is float16's.
    monkeypatch.setenv(_fallback.FALLBACK_ENV, "1")
    monkeypatch.setattr(_fallback, "_fallback_warned", True)
    opt = _opt(False, dtype=np.float16, last_dtype=np.float16)  # ApplyRMSProp has no float64 kernel
    assert opt.moment[0].dtype == Tensor(np.zeros(1, np.float16)).dtype
    saved = opt.state_per_parameter()
    with pytest.raises(ValueError, match=r"state\['moment\.a\.w'\] must hold finite values that fit the state's "
                                         r"dtype Float16 \(\|v\| <= 65504\), but got 100000"):
        opt.load_state_per_parameter(_with(saved, "moment.a.w", np.full((2, 3), 1e5, np.float32)))
    assert all(np.array_equal(opt.state_per_parameter()[k], saved[k]) for k in saved)
    assert opt.load_state_per_parameter(_with(saved, "moment.a.w", np.full((2, 3), 6e4, np.float32)))
    np.testing.assert_array_equal(opt.state_per_parameter()["moment.a.w"], np.full((2, 3), 6e4, np.float16))


@pytest.mark.parametrize("flat", [False, True], ids=["per-param-state", "flat-state"])
def test_a_load_after_steps_is_what_the_next_step_uses(mode, flat):
    # In PYNATIVE_MODE a step compiled before a Parameter's set_data keeps reading its old data (nn.RMSProp
    # too); the load must reach the compiled step in both modes. One step after loading a mean square of 100
    # moves each element by lr * g / sqrt(decay * 100 + (1 - decay) * g^2 + eps), from the float64 reference.
    from rmsprop_ops.reference import rmsprop_step

    opt = _opt(flat)
    opt(tuple(Tensor(np.full(p.shape, 0.5, p.asnumpy().dtype)) for p in opt._parameters))
    state = opt.state_per_parameter()
    loaded = {k: (np.full(v.shape, 100.0) if k.startswith("mean_square") else np.full(v.shape, 0.01)).astype(v.dtype)
              for k, v in state.items()}
    opt.load_state_per_parameter(loaded)
    before = [p.asnumpy().astype(np.float64) for p in opt._parameters]
    grads = tuple(Tensor(np.full(p.shape, 0.5, p.asnumpy().dtype)) for p in opt._parameters)
    for out in opt(grads):
        out.asnumpy()
    after = opt.state_per_parameter()
    for p, p0 in zip(opt._parameters, before):
        want = rmsprop_step(p0, np.full(p.shape, 0.5), loaded[f"mean_square.{p.name}"], lr=np.float32(0.01), rho=0.9,
                            epsilon=1e-10, momentum=0.9, moment=loaded[f"moment.{p.name}"])
        np.testing.assert_allclose(p.asnumpy(), want["param"], rtol=1e-6, err_msg=p.name)
        np.testing.assert_allclose(after[f"mean_square.{p.name}"], want["mean_square"], rtol=1e-6, err_msg=p.name)
