"""Renders the Paddle registration source (PD_BUILD_OP, kernel signatures) from the core's op registry.

The registry (``rmsprop_ops.registry.schema``) is the single description of every op's inputs, outputs,
attributes and in-place map; this module turns it into C++ so the Paddle ops cannot drift from it. The
hand-written half, ``csrc/paddle_kernel.h``, only converts tensors and calls the core's C ABI.
"""

from __future__ import annotations

import copy
import functools
import re

from .. import registry
from .._toolkit.checks import registry_document

__all__ = ["OP_PREFIX", "DYGRAPH_SUFFIX", "STATIC_SUFFIX", "FLAT_SUFFIX", "paddle_op_name", "op_schema",
           "render_source", "registered_ops", "CORE_OPS", "FLAT_OPS"]

# Paddle already has an op named ``rmsprop``; ours live under a prefix.
OP_PREFIX = "rmsprop_ops_"
CORE_OPS = ("rmsprop", "rmsprop_centered", "rmsprop_multi", "rmsprop_centered_multi")

# Besides the public op, which declares every write in place, each core op is registered in the forms the
# optimizer calls, which write the same buffers through inputs the kernel updates via their pointers:
# - "_dygraph" declares nothing in place. Paddle's eager custom-op runner builds a new Tensor, an autograd
#   node and a Python object for every in-place output on every call, and in dygraph a declaration feeds
#   no dataflow: all it adds is the inplace version bump, which the optimizer does itself for the
#   parameters (autograd reads it; the state never enters autograd).
# - "_static" (per-tensor state) declares only the parameters in place: in a static program the state's
#   values are read by this op alone, and every output is one more value that PIR's interpreter and
#   Executor.run's program key handle on every run. The parameters stay declared, which orders the
#   update after every op that reads them.
DYGRAPH_SUFFIX = "_dygraph"
STATIC_SUFFIX = "_static"
_TWIN_IN_PLACE = {DYGRAPH_SUFFIX: (), STATIC_SUFFIX: ("Param", "Param[]")}

# The multi-tensor ops also come in a flat-state form (``RMSProp(flat_state=True)``): each kind of state is
# one 1-D buffer holding every tensor's slice at ``offsets`` instead of a list of tensors, as the registry's
# "flat_state" section describes (layout: rmsprop_ops/flat.h). Paddle's interpreter does bookkeeping for
# every value an op touches on every step, so fewer values make a cheaper step (docs/performance.md).
FLAT_SUFFIX = "_flat"
FLAT_OPS = ("rmsprop_multi", "rmsprop_centered_multi")
_FLAT = registry_document()["flat_state"]
_FLAT_STATE = tuple(_FLAT["state_inputs"])

# Registry attribute type -> (PD_BUILD_OP type, kernel argument type).
_ATTR_TYPES = {
    "float": ("float", "float"),
    "bool": ("bool", "bool"),
    "enum": ("int", "int"),
    "float[]": ("std::vector<float>", "const std::vector<float>&"),
    "int[]": ("std::vector<int64_t>", "const std::vector<int64_t>&"),
}

# Registry input name -> field of rmsprop_ops_paddle::Call (tensor lists: the C ABI's tensor set); the scalar
# inputs (LearningRate, GradScale, SkipUpdate, ...) are passed by name, as the registry lists them.
_LIST_SLOTS = {"Param": "param", "Grad": "grad", "MeanSquare": "mean_square", "Moment": "moment",
               "MeanGrad": "mean_grad", "MasterParam": "master_param"}
_SCALAR_SLOTS = {i["name"]: i for i in registry_document()["ops"][0]["inputs"] if i.get("scalar")}


def paddle_op_name(core_op: str, dygraph: bool = False, flat: bool = False, twin: str = "") -> str:
    """The Paddle op's name: the public op, or the optimizer's ``twin`` form (``dygraph=True`` is the
    ``"_dygraph"`` twin)."""
    return OP_PREFIX + core_op + (FLAT_SUFFIX if flat else "") + (DYGRAPH_SUFFIX if dygraph else twin)


@functools.cache
def _op_schema(core_op: str, flat: bool):
    sc = registry.schema(core_op)
    if not flat:
        return sc
    if core_op not in FLAT_OPS:
        raise ValueError(f"flat state: expected one of the multi-tensor ops {FLAT_OPS}, got {core_op!r}")
    sc = copy.deepcopy(sc)
    single = {f"{b}[]": b for b in _FLAT_STATE}
    single.update({f"{b}Out[]": f"{b}Out" for b in _FLAT_STATE})
    for i in sc["inputs"]:
        if i["name"] in single:
            i["name"] = single[i["name"]]
            i["doc"] = f"flat buffer (1-D) holding every Param's {i['doc']} at offsets"
    sc["outputs"] = [single.get(o, o) for o in sc["outputs"]]
    sc["inplace"] = {single.get(k, k): single.get(v, v) for k, v in sc["inplace"].items()}
    sc["attrs"].append(copy.deepcopy(_FLAT["offsets_attr"]))
    return sc


def op_schema(core_op: str, flat: bool = False) -> dict:
    """The registry schema of ``core_op``, or of its flat-state form (state inputs are single 1-D tensors,
    and an ``offsets`` attribute is added). Shared: do not modify."""
    return _op_schema(core_op, bool(flat))


def _base(name: str) -> str:
    return name[:-2] if name.endswith("[]") else name


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", _base(name)).lower()


def _pd_name(name: str, optional: bool) -> str:
    s = f'"{_base(name)}"'
    if name.endswith("[]"):
        s = f"paddle::Vec({s})"
    if optional:
        s = f"paddle::Optional({s})"
    return s


def _input_arg_type(is_list: bool, optional: bool, inplace: bool) -> str:
    t = "std::vector<paddle::Tensor>" if is_list else "paddle::Tensor"
    if optional:
        t = f"paddle::optional<{t}>"
    return f"{t}&" if inplace else f"const {t}&"


def _render_op(core_op: str, twin: str = "", flat: bool = False) -> str:
    sc = op_schema(core_op, flat)
    name = paddle_op_name(core_op, flat=flat, twin=twin)
    multi = bool(sc["multi_tensor"])
    centered = bool(sc["centered"])
    inputs = sc["inputs"]
    inplace = sc["inplace"]
    for out in sc["outputs"]:
        if out not in inplace.values():
            raise ValueError(f"registry op {core_op!r}: output {out!r} has no in-place input; the Paddle ops "
                             "expect every output to be in place")
    if twin:
        inplace = {i: o for i, o in inplace.items() if i in _TWIN_IN_PLACE[twin]}
    outputs = [o for o in sc["outputs"] if o in inplace.values()]
    optional = {i["name"]: i["optional"] for i in inputs}
    out_of = {out: inp for inp, out in inplace.items()}
    for i in inputs:
        b = _base(i["name"])
        if b not in _LIST_SLOTS and b not in _SCALAR_SLOTS:
            raise ValueError(f"registry op {core_op!r}: input {i['name']!r} has no slot in paddle_kernel.h")

    args, fill = [], []
    for i in inputs:
        n, b, is_list = i["name"], _base(i["name"]), i["name"].endswith("[]")
        var = "in_" + _snake(n)
        args.append(f"{_input_arg_type(is_list, i['optional'], n in inplace)} {var}")
        if b in _LIST_SLOTS:
            fill.append(f"  c.{_LIST_SLOTS[b]} = rmsprop_ops_paddle::ptrs({var});")
        else:
            spec = _SCALAR_SLOTS[b]
            attr = f'"{spec["attr"]}"' if spec["attr"] else "nullptr"
            fill.append(f'  c.scalar("{b}", {attr}, {str(spec["float_only"]).lower()}, '
                        f"rmsprop_ops_paddle::ptr({var}));")
    attr_decls = []
    for a in sc["attrs"]:
        pd_t, arg_t = _ATTR_TYPES[a["type"]]
        args.append(f"{arg_t} at_{a['name']}")
        fill.append(f'  c.attr("{a["name"]}", at_{a["name"]});')
        attr_decls.append(f'"{a["name"]}: {pd_t}"')

    pd_inputs = ", ".join(_pd_name(i["name"], i["optional"]) for i in inputs)
    pd_outputs = ", ".join(_pd_name(o, optional[out_of[o]]) for o in outputs)
    pd_inplace = ", ".join(f"{{{_pd_name(i, optional[i])}, {_pd_name(o, optional[i])}}}" for i, o in inplace.items())
    # No InferShape/InferDtype functions: every output is in place, and Paddle then gives each output its
    # input's shape and dtype, in PIR and in the legacy IR. Functions that list the in-place outputs too are
    # refused by the legacy IR (it wants entries only for outputs that are not in place).
    sep = ",\n    "
    form = (" (flat state)" if flat else "") + (f" ({twin[1:]} twin)" if twin else "")
    declared = ""
    if outputs:
        declared = f"""
    .Outputs({{{pd_outputs}}})"""
    attrs_line = f"""
    .Attrs({{{", ".join(attr_decls)}}})"""
    if inplace:
        attrs_line += f"""
    .SetInplaceMap({{{pd_inplace}}})"""
    return f"""
// ---- {name}: generated from registry op "{core_op}"{form} ----
void {name}_kernel(
    {sep.join(args)}) {{
  rmsprop_ops_paddle::Call c;
  c.centered = {str(centered).lower()};
  c.multi = {str(multi).lower()};
  c.flat = {str(flat).lower()};
{chr(10).join(fill)}
  rmsprop_ops_paddle::run_update(c);
}}

PD_BUILD_OP({name})
    .Inputs({{{pd_inputs}}}){declared}{attrs_line}
    .SetKernelFn(PD_KERNEL({name}_kernel));
"""


def registered_ops(ops=CORE_OPS):
    """(core op, twin suffix, flat) of every Paddle op registered for ``ops`` (twin "" is the public op;
    flat state has no "_static" twin: its state is three values, declared in place)."""
    return [(op, twin, flat) for op in ops for flat in ((False, True) if op in FLAT_OPS else (False,))
            for twin in ("", DYGRAPH_SUFFIX) + (() if flat else (STATIC_SUFFIX,))]


def render_source(ops=CORE_OPS) -> str:
    """The complete C++ translation unit registering ``ops`` with Paddle."""
    head = ("// Generated by rmsprop_ops/paddle/_codegen.py from the core op registry. Do not edit.\n"
            '#include "paddle_kernel.h"\n')
    return head + "".join(_render_op(*spec) for spec in registered_ops(ops))
