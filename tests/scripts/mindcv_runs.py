"""One mindcv recipe run (examples/mindcv_rmsprop.py) with one RMSProp implementation, in GRAPH_MODE.

``python tests/scripts/mindcv_runs.py RECIPE VARIANT OUT.npz`` trains the recipe (``MINDCV_STEPS`` steps,
default 6) and saves its losses, weights and optimizer state. Variants:

* ``ours``: ``rmsprop_ops.mindspore.RMSProp``; ``builtin``: ``mindspore.nn.RMSProp``;
* ``documented``: ``ReferenceRMSProp``, nn.RMSProp's documented rule ``lr*g/sqrt(ms+eps)`` written in
  MindSpore ops, independent of both kernels;
* ``cpu_kernel``: ``ReferenceRMSProp`` as MindSpore 2.10's CPU kernel computes it: ``lr*g/(sqrt(ms)+eps)``
  for each full block of 8 elements (its AVX loop), the documented rule for the rest (its scalar tail);
* ``documented_lr_ulp``: ``documented`` with every learning rate moved up by one float32 ulp, which moves
  every update by about an ulp: the float32 noise floor of a comparison;
* a ``+model=NAME`` suffix uses another mindcv model than the recipe's (``ours+model=mnasnet_050``).

One run per process: the networks' dropout and drop-path draws depend on what ran before in the process,
so runs are compared only between fresh processes (and the GRAPH_MODE context stays out of the tests).
"""

from __future__ import annotations

import os
import sys

import numpy as np

import mindspore as ms
from mindspore import nn
from mindspore.common.parameter import Parameter, ParameterTuple
from mindspore.ops import composite as C
from mindspore.ops import functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
import mindcv_rmsprop  # noqa: E402  (the example is the code under test)

BLOCK = 8
_apply = C.MultitypeFuncGraph("reference_rmsprop")


@_apply.register("Number", "Number", "Number", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _step(decay, momentum, epsilon, lr, in_block, weight, mean_square, moment, grad):
    """One element-wise step; ``in_block`` is 1 where the AVX form applies (0 everywhere: documented)."""
    lr = F.cast(lr, grad.dtype)
    one_minus = F.cast(F.tuple_to_array((1.0 - decay,)), grad.dtype)
    # MindSpore's kernel and its docs update the mean square the same way up to rounding; this is the
    # kernel's form, s + (g^2 - s) * (1 - decay).
    ms_new = mean_square + (grad * grad - mean_square) * one_minus
    eps = F.cast(F.tuple_to_array((epsilon,)), grad.dtype)
    denom = in_block * (F.sqrt(ms_new) + eps) + (1 - in_block) * F.sqrt(ms_new + eps)
    mom = moment * F.cast(F.tuple_to_array((momentum,)), grad.dtype) + grad * lr / denom
    success = F.depend(True, F.assign(mean_square, ms_new))
    success = F.depend(success, F.assign(moment, mom))
    return F.depend(success, F.assign(weight, weight - mom))


def _block_mask(param, avx):
    n = int(np.prod(param.shape))
    mask = np.zeros(n, np.float32)
    if avx:
        # One thread's range from element 0; MindSpore splits large tensors over threads, each range
        # with its own tail of up to 7 elements, so a few more elements take the documented form there.
        mask[: n - n % BLOCK] = 1
    return Parameter(ms.Tensor(mask.reshape(param.shape)), name="in_block." + param.name, requires_grad=False)


class ReferenceRMSProp(nn.Optimizer):
    """nn.RMSProp (uncentered) in MindSpore ops: its constructor, its gradient preprocessing (weight decay,
    loss scale, learning-rate kinds, groups) from ``nn.Optimizer``, and the update written out, with
    ``epsilon`` outside the root in blocks of 8 when ``cpu_kernel=True``."""

    def __init__(self, params, learning_rate=0.1, decay=0.9, momentum=0.0, epsilon=1e-10, use_locking=False,
                 centered=False, loss_scale=1.0, weight_decay=0.0, *, cpu_kernel=False):
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        if centered:
            raise ValueError("ReferenceRMSProp: centered is not written out")
        self.decay, self.momentum, self.epsilon = decay, momentum, epsilon
        self.ms = self._parameters.clone(prefix="mean_square", init="ones")
        self.moment = self._parameters.clone(prefix="moment", init="zeros")
        self.in_block = ParameterTuple(_block_mask(p, cpu_kernel) for p in self._parameters)

    @ms.jit
    def construct(self, gradients):
        params = self._parameters
        gradients = self.decay_weight(gradients)
        gradients = self.gradients_centralization(gradients)
        gradients = self.scale_grad(gradients)
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        if self.is_group_lr:
            return self.hyper_map_reverse(F.partial(_apply, self.decay, self.momentum, self.epsilon), lr,
                                          self.in_block, params, self.ms, self.moment, gradients)
        return self.hyper_map_reverse(F.partial(_apply, self.decay, self.momentum, self.epsilon, lr),
                                      self.in_block, params, self.ms, self.moment, gradients)


def _class(name):
    if name == "ours":
        return None
    if name == "builtin":
        return nn.RMSProp
    if name.startswith("documented"):
        return ReferenceRMSProp
    if name == "cpu_kernel":
        return lambda *args, **kw: ReferenceRMSProp(*args, cpu_kernel=True, **kw)
    raise ValueError(f"unknown variant {name!r}")


def run(recipe, variant, steps):
    name, _, model = variant.partition("+model=")
    learning_rates = None
    if name.endswith("_lr_ulp"):
        rates = np.float32(mindcv_rmsprop.recipe_learning_rates(recipe, steps))
        learning_rates = [float(v) for v in np.nextafter(rates, np.float32(1))]
        name = name[: -len("_lr_ulp")]
    return mindcv_rmsprop.train(recipe, _class(name), steps=steps, model=model or None,
                                learning_rates=learning_rates)


def main(argv):
    recipe, variant, out = argv
    result = run(recipe, variant, int(os.environ.get("MINDCV_STEPS", "6")))
    arrays = {"losses": np.asarray(result["losses"]), "optimizer": np.asarray(result["optimizer"])}
    for kind in ("initial", "weights", "state"):
        arrays.update({f"{kind}/{k}": v for k, v in result[kind].items()})
    np.savez(out, **arrays)
    print(f"{variant}: {result['optimizer']} losses {result['losses']}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
