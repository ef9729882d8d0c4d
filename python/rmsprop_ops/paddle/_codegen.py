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

__all__ = ["OP_PREFIX", "DYGRAPH_SUFFIX", "FLAT_SUFFIX", "paddle_op_name", "op_schema", "render_source",
           "registered_ops", "CORE_OPS", "FLAT_OPS"]

# Paddle already has an op named ``rmsprop``; ours live under a prefix.
OP_PREFIX = "rmsprop_ops_"
CORE_OPS = ("rmsprop", "rmsprop_centered", "rmsprop_multi", "rmsprop_centered_multi")

# Each core op is registered twice. The dygraph twin declares only the parameters in place and takes the
# optimizer state (MeanSquare, Moment, MeanGrad, MasterParam) as plain inputs, which the kernel still
# updates through their pointers. Paddle's eager custom-op runner builds a new Tensor, a
# GradNodeAccumulation and a Python object for every in-place output on every call, several times what an
# input costs, so with per-parameter state the declarations cost more than the update (docs/performance.md).
# Dygraph has no dataflow for the declaration to feed: all it adds is a version bump, which only autograd
# reads, and the state never enters autograd. The static program keeps the full in-place map: PIR's
# dataflow needs every write declared.
DYGRAPH_SUFFIX = "_dygraph"
_DYGRAPH_IN_PLACE = ("Param", "Param[]")

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


def paddle_op_name(core_op: str, dygraph: bool = False, flat: bool = False) -> str:
    return OP_PREFIX + core_op + (FLAT_SUFFIX if flat else "") + (DYGRAPH_SUFFIX if dygraph else "")


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


def _shape_arg_type(is_list: bool, optional: bool) -> str:
    t = "std::vector<std::vector<int64_t>>" if is_list else "std::vector<int64_t>"
    return f"const paddle::optional<{t}>&" if optional else f"const {t}&"


def _dtype_arg_type(is_list: bool, optional: bool) -> str:
    t = "std::vector<paddle::DataType>" if is_list else "paddle::DataType"
    return f"const paddle::optional<{t}>&" if optional else f"const {t}&"


def _render_op(core_op: str, dygraph: bool = False, flat: bool = False) -> str:
    sc = op_schema(core_op, flat)
    name = paddle_op_name(core_op, dygraph, flat)
    multi = bool(sc["multi_tensor"])
    centered = bool(sc["centered"])
    inputs = sc["inputs"]
    inplace = sc["inplace"]
    for out in sc["outputs"]:
        if out not in inplace.values():
            raise ValueError(f"registry op {core_op!r}: output {out!r} has no in-place input; the Paddle ops "
                             "expect every output to be in place")
    if dygraph:
        inplace = {i: o for i, o in inplace.items() if i in _DYGRAPH_IN_PLACE}
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

    # InferShape / InferDtype: each output mirrors its in-place input (and Param for the state buffers'
    # shapes is checked by the core at run time, where optional inputs are known).
    in_index = {i["name"]: k for k, i in enumerate(inputs)}
    shape_args = [f"{_shape_arg_type(i['name'].endswith('[]'), i['optional'])} s{k}" for k, i in enumerate(inputs)]
    dtype_args = [f"{_dtype_arg_type(i['name'].endswith('[]'), i['optional'])} d{k}" for k, i in enumerate(inputs)]
    shape_body, dtype_body = [], []
    for out in outputs:
        k = in_index[out_of[out]]
        is_list, opt = out.endswith("[]"), optional[out_of[out]]
        src_s, src_d = (f"(*s{k})", f"(*d{k})") if opt else (f"s{k}", f"d{k}")
        guard = f"if (s{k}) " if opt else ""
        guard_d = f"if (d{k}) " if opt else ""
        if is_list:
            shape_body.append(f"  {guard}for (const auto &x : {src_s}) out.push_back(x);")
            dtype_body.append(f"  {guard_d}for (const auto &x : {src_d}) out.push_back(x);")
        else:
            shape_body.append(f"  {guard}out.push_back({src_s});")
            dtype_body.append(f"  {guard_d}out.push_back({src_d});")

    pd_inputs = ", ".join(_pd_name(i["name"], i["optional"]) for i in inputs)
    pd_outputs = ", ".join(_pd_name(o, optional[out_of[o]]) for o in outputs)
    pd_inplace = ", ".join(f"{{{_pd_name(i, optional[i])}, {_pd_name(o, optional[i])}}}" for i, o in inplace.items())
    sep = ",\n    "
    form = (" (flat state)" if flat else "") + (" (dygraph twin)" if dygraph else "")
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

std::vector<std::vector<int64_t>> {name}_infer_shape(
    {sep.join(shape_args)}) {{
  std::vector<std::vector<int64_t>> out;
{chr(10).join(shape_body)}
  return out;
}}

std::vector<paddle::DataType> {name}_infer_dtype(
    {sep.join(dtype_args)}) {{
  std::vector<paddle::DataType> out;
{chr(10).join(dtype_body)}
  return out;
}}

PD_BUILD_OP({name})
    .Inputs({{{pd_inputs}}})
    .Outputs({{{pd_outputs}}})
    .Attrs({{{", ".join(attr_decls)}}})
    .SetInplaceMap({{{pd_inplace}}})
    .SetKernelFn(PD_KERNEL({name}_kernel))
    .SetInferShapeFn(PD_INFER_SHAPE({name}_infer_shape))
    .SetInferDtypeFn(PD_INFER_DTYPE({name}_infer_dtype));
"""


def registered_ops(ops=CORE_OPS):
    """(core op, dygraph, flat) of every Paddle op registered for ``ops``."""
    return [(op, dygraph, flat) for op in ops for flat in ((False, True) if op in FLAT_OPS else (False,))
            for dygraph in (False, True)]


def render_source(ops=CORE_OPS) -> str:
    """The complete C++ translation unit registering ``ops`` with Paddle."""
    head = ("// Generated by rmsprop_ops/paddle/_codegen.py from the core op registry. Do not edit.\n"
            '#include "paddle_kernel.h"\n')
    return head + "".join(_render_op(*spec) for spec in registered_ops(ops))
