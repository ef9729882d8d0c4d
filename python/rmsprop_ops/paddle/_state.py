"""Where each parameter's RMSProp state lives: one tensor per parameter and kind, or flat buffers.

The accumulators keep ``paddle.optimizer.RMSProp``'s kinds and names (``<param>_mean_square_0``, ...), so
``state_dict()`` checkpoints move between the two. With flat state, the state of the parameters created
together (split by state dtype) lives in one 1-D buffer per kind, which the op takes whole:

- dynamic mode: each parameter's accumulators are still registered, as views of its slices, so
  ``state_dict()`` lists live per-parameter tensors under Paddle's names and ``set_state_dict`` writes
  into the buffers;
- a static program: the buffers are the program's persistable variables (``<first>_mean_square_flat_0``).

A parameter's state is kept for its float32 master weight when it has one (the "target"). The mean square
starts at the rule's ``initial_accumulator_value`` (0 in Paddle's rule, 1 in TF1's), the others at 0.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import paddle
from paddle.base import framework, unique_name

from .._flat import flat_offsets

__all__ = ["KINDS", "FLAT_KINDS", "FlatChunk", "Slot", "StateStore", "state_dtype", "distributed"]

# Paddle's accumulator kinds, in the order paddle.optimizer.RMSProp creates them.
KINDS = ("momentum", "mean_square", "mean_grad")
# The order of the flat buffers, which is the op's order of its state inputs.
FLAT_KINDS = ("mean_square", "momentum", "mean_grad")


class FlatChunk:
    """The flat state of targets created together: one 1-D buffer per kind (``FLAT_KINDS`` order), target
    k's slice at ``offsets[k]``, shaped ``shapes[k]``."""

    def __init__(self, buffers, names, offsets, shapes):
        self.buffers = buffers
        self.names = names
        self.offsets = offsets
        self.shapes = shapes


class Slot(NamedTuple):
    """Where one target's state is: per-parameter tensors (``chunk`` None), or a flat chunk's buffers and
    the target's ``offset`` in them."""

    mean_square: object
    momentum: object
    mean_grad: object
    chunk: FlatChunk | None
    offset: int | None


def state_dtype(opt, target):
    """The accumulators' dtype: float32 for a float16/bfloat16 parameter without a master weight (the core
    computes in float32 and keeps its state in it; Paddle's own RMSProp has no CPU kernel for them), else
    the target's dtype."""
    return paddle.float32 if opt._is_dtype_fp16_or_bf16(target.dtype) else target.dtype


def distributed(param):
    """A parameter of auto-parallel (a dist tensor, or one ``fully_shard`` will shard): its state is sharded
    per parameter, with the parameter's placements, so flat state leaves it out. The legacy IR's
    Parameter has no ``is_dist``."""
    if getattr(param, "_need_shard_auto", False):
        return True
    is_dist = getattr(param, "is_dist", None)
    return bool(is_dist()) if is_dist is not None else False


class StateStore:
    """The flat chunks of one optimizer, and the lookup of every target's state."""

    def __init__(self):
        self.chunks = []
        self._flat = {}  # target name -> (chunk, offset)

    def create(self, opt, params, flat):
        """Create the state of ``params`` not seen before; returns their targets in creation order."""
        targets, flat_targets = [], []
        for p in params:
            if p.name in opt._already_create_accumulator:
                continue
            target = p
            if opt._multi_precision and opt._is_dtype_fp16_or_bf16(p.dtype):
                target = opt._create_master_weight(p)
            targets.append(target)
            if flat and not distributed(p):
                flat_targets.append(target)
            else:
                dtype = state_dtype(opt, target)
                for kind in KINDS:
                    opt._add_accumulator(kind, target, dtype=dtype, fill_value=opt._rule.initial_value(kind))
            opt._already_create_accumulator.add(p.name)
        if flat_targets:
            self._create_flat(opt, flat_targets)
        return targets

    def _create_flat(self, opt, targets):
        """One chunk per state dtype for ``targets`` (one creation batch: the parameters holding gradients at
        a group's first step; a parameter first seen later joins a new batch), slices packed in order."""
        by_dtype = {}
        for t in targets:
            by_dtype.setdefault(state_dtype(opt, t), []).append(t)
        dygraph = framework.in_dygraph_mode()
        for dtype, members in by_dtype.items():
            shapes = [tuple(int(d) for d in t.shape) for t in members]
            if any(d < 0 for shape in shapes for d in shape):
                raise ValueError(f"flat_state: expected parameters of known shape, got {members[0].name} with "
                                 f"shape {list(members[0].shape)}")
            offsets, total = flat_offsets(math.prod(shape) for shape in shapes)
            if dygraph:
                # On the parameters' device, as _add_accumulator places per-parameter state.
                np_dtype = {paddle.float32: np.float32, paddle.float64: np.float64}[dtype]
                buffers = tuple(paddle.to_tensor(np.full(max(total, 1), opt._rule.initial_value(kind), np_dtype),
                                                 place=members[0].place)
                                for kind in FLAT_KINDS)
                for kind, buf in zip(FLAT_KINDS, buffers):
                    buf.name = unique_name.generate(f"{members[0].name}_{opt._acc_name(kind)}_flat")
                for t, off, shape in zip(members, offsets, shapes):
                    for kind in KINDS:
                        buf = buffers[FLAT_KINDS.index(kind)]
                        _register_view(opt, kind, t, buf[off:off + math.prod(shape)].reshape(list(shape)))
            else:
                buffers = tuple(opt._add_accumulator(kind + "_flat", members[0], dtype=dtype, shape=[max(total, 1)],
                                                     fill_value=opt._rule.initial_value(kind))
                                for kind in FLAT_KINDS)
            chunk = FlatChunk(buffers, [t.name for t in members], offsets, shapes)
            self.chunks.append(chunk)
            for t, off in zip(members, offsets):
                self._flat[t.name] = (chunk, off)

    def slot(self, opt, target):
        """Where ``target``'s state is. Per-parameter tensors are read from the optimizer's accumulators on
        every call: auto-parallel replaces them with sharded ones after creation."""
        flat = self._flat.get(target.name)
        if flat is not None:
            chunk, offset = flat
            return Slot(*chunk.buffers, chunk, offset)
        acc = opt._accumulators
        return Slot(*(acc[opt._acc_name(kind)][target.name] for kind in FLAT_KINDS), None, None)

    def flat_place(self, target_name):
        """(chunk, offset) of a target with flat state, else None."""
        return self._flat.get(target_name)


def _register_view(opt, kind, target, view):
    """Register ``view`` (of a flat buffer) as ``target``'s accumulator of ``kind``, named as Paddle's
    ``_add_accumulator`` names it."""
    full = opt._acc_name(kind)
    name = unique_name.generate(f"{target.name}_{full}")
    view.name = name
    opt._opti_name_list.append(name)
    opt._accumulators[full][target.name] = view
