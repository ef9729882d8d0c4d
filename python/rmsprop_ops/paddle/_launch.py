"""One optimization pass: its updates as named records, grouped into op launches, checked, then run.

``Step`` is the pass's context: the optimizer's ``_append_optimize_op`` adds a ``Row`` per parameter and
``_finish_update`` runs them. Rows that share everything the op takes once per call (``LaunchKey``) go
into one multi-tensor launch; a row whose learning-rate scale the fused op cannot carry, or every row of a
static program built with ``fused=False``, gets a launch of its own. Before the first launch writes
anything, every later launch's rows are checked, so a refused launch never leaves earlier ones applied.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

from paddle.base import framework

from .._toolkit.grouping import plan_launches
from ._args import Rule
from ._build import load_ops
from ._codegen import STATIC_SUFFIX, op_schema, paddle_op_name
from ._param_attrs import Decay
from ._state import FlatChunk, Slot

__all__ = ["Row", "LaunchKey", "Launch", "Call", "Step", "invoke", "check_grad"]


class LaunchKey(NamedTuple):
    """Everything one launch takes once: the rule, the decay mode, the value clip, the parameters' dtype,
    whether they have master weights, and the flat chunk holding their state (None: per-parameter)."""

    rule: Rule
    decay_mode: int
    clip: float | None
    dtype: object
    master: bool
    chunk: FlatChunk | None


class Row(NamedTuple):
    """One parameter's update in a pass. ``lr_mult`` None: the parameter needs an op of its own."""

    param: object
    grad: object
    slot: Slot
    master: object
    decay: Decay
    lr_mult: float | None
    key: LaunchKey


class Launch(NamedTuple):
    rows: list
    multi: bool


class Step:
    """The context of one optimization pass (see the module docstring).

    ``skip``: the AMP found-inf flag the op reads (SkipUpdate), or None. ``fused``: whether rows sharing a
    key share a launch (always in dynamic mode, where no program records the calls). ``rule`` and ``clip``:
    the pass's parameter group's rule (``_args.Rule``) and gradient clip. ``sparse_modes`` (parameter name
    -> rows mode) and ``sparse_calls``: the pass's SelectedRows gradients that take the row-sparse update
    (``_sparse``), checked before the first launch and run after the last. ``declare_state``: a static
    program's op declares the state it writes too (the public op rather than the ``_static`` twin), for
    ops appended after it that read that state (the averages of master weights, ``_ema``). ``count``: the
    update count ``bias_correction`` reads (``_step_count.StepCount``), or None."""

    def __init__(self, skip, fused, rule, clip, declare_state=False, count=None):
        self.skip = skip
        self.count = count
        self.declare_state = declare_state
        self.fused = fused
        self.rule = rule
        self.clip = clip
        self.rows = []
        self.ran = []  # [(Launch, Call)] run so far
        self.sparse_modes = {}
        self.sparse_calls = []

    def add(self, row):
        self.rows.append(row)

    def launches(self, rows=None):
        """The rows as launches (``_toolkit.grouping.plan_launches``), in the order their first rows were
        added; a row that cannot join a fused launch gets a key of its own."""
        rows = self.rows if rows is None else rows
        keys = [row.key if row.lr_mult is not None and self.fused else (None, i) for i, row in enumerate(rows)]
        return [Launch([rows[i] for i in launch.members], isinstance(launch.key, LaunchKey))
                for launch in plan_launches(keys)]

    def run(self, opt):
        """Check every launch, then run them all; the rows are consumed, the launches added to ``ran``."""
        rows, self.rows = self.rows, []
        if not rows:
            return
        launches = self.launches(rows)
        dygraph = framework.in_dygraph_mode()
        lrs = [opt._global_learning_rate() if launch.multi else opt._create_param_lr(
            (launch.rows[0].param, launch.rows[0].grad)) for launch in launches]
        if dygraph:
            for launch, lr in zip(launches[1:], lrs[1:]):
                _check_rows(launch.rows)
                if not launch.multi:
                    _check_lr(launch.rows[0].param, lr)
        else:
            for launch in launches:
                _check_rows(launch.rows)
        for launch, lr in zip(launches, lrs):
            call = _call(launch, lr, self.skip, dygraph, self.declare_state,
                         None if self.count is None else self.count.current)
            call.run()
            self.ran.append((launch, call))


def _check_rows(rows):
    for row in rows:
        check_grad(row.param, row.grad)


def check_grad(p, g):
    """What the op would refuse in a launch after the first (each launch checks its own inputs before
    writing): a gradient of another shape or dtype than its parameter."""
    ps, gs = list(p.shape), list(g.shape)
    if ps != gs and all(d >= 0 for d in ps + gs):
        raise ValueError(f"{p.name}: Grad: expected shape {ps} like the parameter, got {gs}")
    if g.dtype != p.dtype:
        raise TypeError(f"{p.name}: Grad: expected dtype {str(p.dtype).replace('paddle.', '')} (the parameter's), "
                        f"got {str(g.dtype).replace('paddle.', '')}")


def _check_lr(param, lr):
    """A parameter's own learning rate (its ParamAttr scale is a Tensor): finite and >= 0."""
    value = float(lr)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{param.name}: learning rate (the global rate times its ParamAttr learning_rate "
                         f"tensor): expected a finite value >= 0, got {value!r}")


class Call(NamedTuple):
    """One op call: the registry op, its inputs and attributes by name, and which form of the op."""

    core_op: str
    tensors: dict
    attrs: dict
    flat: bool
    dygraph: bool
    twin: str

    def run(self):
        invoke(self.core_op, self.tensors, self.attrs, checked=False, dygraph=self.dygraph, flat=self.flat,
               twin=self.twin)
        if self.dygraph:
            # The dygraph twin declares nothing in place: bump the parameters' inplace versions, which
            # autograd checks, as a declared in-place output would.
            params = self.tensors["Param"]
            for p in params if isinstance(params, list) else [params]:
                p._bump_inplace_version()


def _call(launch, lr, skip, dygraph, declare_state=False, current_step=None):
    rows = launch.rows
    key = rows[0].key
    rule, flat = key.rule, key.chunk is not None
    multi = launch.multi or flat  # flat state has the multi-tensor op only (one parameter: a list of one)
    core_op = ("rmsprop_centered" if rule.centered else "rmsprop") + ("_multi" if multi else "")
    coeffs = [row.decay.coeff for row in rows]
    attrs = rule.op_attrs()
    attrs.update(weight_decay_mode=key.decay_mode, clip_gradient=-1.0 if key.clip is None else key.clip,
                 weight_decay=coeffs[0])
    params = [row.param for row in rows]
    pick = list if multi else (lambda ts: ts[0])
    if flat:
        state = dict(zip(("MeanSquare", "Moment", "MeanGrad"), key.chunk.buffers))
    else:
        state = {"MeanSquare": pick([r.slot.mean_square for r in rows]), "Moment": pick([r.slot.momentum for r in rows]),
                 "MeanGrad": pick([r.slot.mean_grad for r in rows])}
    tensors = {"Param": pick(params), "Grad": pick([r.grad for r in rows]), "MeanSquare": state["MeanSquare"],
               "Moment": state["Moment"], "LearningRate": lr, "SkipUpdate": skip, "CurrentStep": current_step}
    if rule.centered:
        tensors["MeanGrad"] = state["MeanGrad"]
    if key.master:
        tensors["MasterParam"] = pick([r.master for r in rows])
    if multi:
        # Per-tensor lists only where values differ: every attribute is printed into the program (and into
        # Executor.run's cache key on every call), 2 numbers per parameter for nothing otherwise.
        mults = [1.0 if r.lr_mult is None else r.lr_mult for r in rows]
        attrs["lr_mults"] = [] if all(m == 1.0 for m in mults) else mults
        attrs["weight_decays"] = [] if all(c == coeffs[0] for c in coeffs) else coeffs
    if flat:
        # The kernel packs the slices itself when the launch covers its buffer whole, in order.
        offsets = [r.slot.offset for r in rows]
        attrs["offsets"] = [] if offsets == key.chunk.offsets else offsets
    # Dynamic mode: the twin declaring nothing in place. A static program's per-parameter state: the twin
    # declaring only the parameters; flat state, or state read after the op: the public op (all declared).
    return Call(core_op, tensors, attrs, flat, dygraph, "" if dygraph or flat or declare_state else STATIC_SUFFIX)


def _default(attr):
    if attr["type"] == "enum":
        return attr["choices"].index(attr["default"])
    if attr["type"] in ("float[]", "int[]"):
        return []
    return attr["default"]


@functools.cache
def _plan(core_op, dygraph, flat, twin):
    """Input names and (attribute name, default) pairs in the registry's order, and the Paddle op's name:
    worked out once per op, not on every call (a static program with one op per parameter makes 1000)."""
    sc = op_schema(core_op, flat)
    inputs = tuple(i["name"].removesuffix("[]") for i in sc["inputs"])
    attrs = tuple((a["name"], _default(a)) for a in sc["attrs"])
    return inputs, attrs, frozenset(n for n, _ in attrs), paddle_op_name(core_op, dygraph, flat, twin)


def invoke(core_op, tensors, attrs, checked=True, dygraph=False, flat=False, twin=""):
    """Call (dynamic) or append (static) the custom op, arguments placed by the registry's order.

    The optimizer passes checked=False: it builds every argument itself from hyper-parameters validated
    at construction (and learning rates validated where they are set), so the Python checks of
    ``load_ops()`` would only add per-step overhead; the kernel and the core still check everything.
    dygraph=True calls the op's dygraph twin (nothing declared in place; see ``_codegen``), and ``twin``
    another twin form, unchecked: the optimizer passes them its own accumulators and the parameters,
    contiguous (Paddle would hand the kernel a contiguous copy of a strided input, and its update would be
    lost). flat=True calls the flat-state form (MeanSquare, Moment, MeanGrad one 1-D buffer each,
    ``offsets``)."""
    if checked and (dygraph or twin):
        raise AssertionError("the twin forms have no checked wrappers: pass checked=False")
    inputs, attr_plan, known, name = _plan(core_op, dygraph, flat, twin)
    if not known.issuperset(attrs):
        raise AssertionError(f"attributes {sorted(set(attrs) - known)} are not in the registry schema of "
                             f"{core_op!r}")
    args = [tensors.get(n) for n in inputs]
    args += [attrs.get(n, d) for n, d in attr_plan]
    ops = load_ops()
    return getattr(ops if checked else ops.raw, name)(*args)

