"""The optimizer's state Parameters: one per parameter and kind as ``nn.RMSProp`` makes them, or with flat
state one 1-D buffer per launch and kind (each parameter's slice given by its launch's offsets)."""

from __future__ import annotations

from mindspore import dtype as mstype
from mindspore.common.initializer import initializer
from mindspore.common.parameter import Parameter, ParameterTuple

from ._plan import Plan

__all__ = ["SIXTEEN_BIT", "per_parameter_buffers", "flat_buffers", "state_dtype"]

SIXTEEN_BIT = (mstype.float16, mstype.bfloat16)


def state_dtype(param_dtype):
    """The core's math type: float64 state for float64 params, float32 otherwise."""
    return mstype.float64 if param_dtype == mstype.float64 else mstype.float32


def per_parameter_buffers(params: ParameterTuple, prefix: str, init: str) -> ParameterTuple:
    """Clones of the params as MindSpore makes them (``<prefix>.<param name>``); 16-bit params get float32
    state, the core's math type."""
    if not any(p.dtype in SIXTEEN_BIT for p in params):
        return params.clone(prefix=prefix, init=init)
    out = []
    for p in params:
        if p.dtype in SIXTEEN_BIT:
            out.append(Parameter(initializer(init, p.shape, mstype.float32), name=f"{prefix}.{p.name}"))
        else:
            x = p.clone(init)
            x.name = f"{prefix}.{x.name}"
            out.append(x)
    return ParameterTuple(out)


def flat_buffers(params: ParameterTuple, plan: Plan, prefix: str, init: str) -> ParameterTuple:
    """One 1-D buffer per launch, ``<prefix>.flat.<name of the launch's first param>``."""
    out = []
    for launch in plan.launches:
        first = params[launch.index[0]]
        out.append(Parameter(initializer(init, (launch.flat_size,), state_dtype(first.dtype)),
                             name=f"{prefix}.flat.{first.name}"))
    return ParameterTuple(out)

