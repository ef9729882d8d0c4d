"""The registry is the schema: every attribute it lists reaches every binding by name, with no binding
naming it. Checked for each attribute of the registry (so an attribute added there is checked too):

- the pybind11 module accepts it as a keyword (the core's filler puts it in place) and names it in errors;
- rmsprop_ / rmsprop_multi_ accept it (explicit parameter or **attrs) and refuse a bad value by name;
- the generated Paddle source declares it as an op attribute and hands it to the filler by name;
- the MindSpore config layout (registry JSON, read by make_config and by the kernel through
  rmsprop_ops_config_field) holds it.
The MindSpore and Paddle suites run the real ops with every attribute.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
import types

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import _core
from rmsprop_ops._toolkit.checks import registry_document
from rmsprop_ops._toolkit.flat import FLAT_ALIGN, flat_offsets

DOC = registry_document()
MULTI = next(op for op in DOC["ops"] if op["name"] == "rmsprop_multi")
ATTRS = MULTI["attrs"]
SINGLE_VALUED = [a for a in ATTRS if a["scope"] != "list"]


def _default(a):
    if a["type"] == "enum":
        return a["choices"].index(a["default"])
    if a["type"] == "bool":
        return bool(a["default"])
    return a["default"]


def _bad(a):
    """A value the registry refuses for attribute a, and the start of the message naming it."""
    if a["type"] == "bool":
        return 2.0, f"{a['name']}: expected a bool, got 2.0"
    if a["type"] == "enum":
        return float(len(a["choices"])), f"{a['name']}: expected one of"
    return float("nan"), f"{a['name']}: expected a finite"


def _arrays(n=3):
    return [np.ones(4, np.float32) for _ in range(n)], [np.full(4, 0.5, np.float32) for _ in range(n)], \
        [np.zeros(4, np.float32) for _ in range(n)]


@pytest.mark.parametrize("attr", SINGLE_VALUED, ids=[a["name"] for a in SINGLE_VALUED])
def test_core_module_takes_every_attribute_by_name(attr):
    ps, gs, mss = _arrays()
    default = _default(attr)
    _core.update(ps, gs, mss, None, None, None, list_names=True, **{attr["name"]: default})
    value, message = _bad(attr)
    before = [p.copy() for p in ps]
    with pytest.raises(ValueError, match=f"^{message}"):
        _core.update(ps, gs, mss, None, None, None, list_names=True, **{attr["name"]: value})
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p, b)


@pytest.mark.parametrize("attr", SINGLE_VALUED, ids=[a["name"] for a in SINGLE_VALUED])
def test_functional_api_takes_every_attribute_by_name(attr):
    ps, gs, mss = _arrays()
    name = attr["c_name"] if attr["name"] == "learning_rate" else attr["name"]
    value = attr["default"] if attr["type"] != "float" or attr["default"] >= 0 else None
    hyper = {"lr": 0.1, "rho": 0.9, "epsilon": 1e-6}
    rmsprop_ops.rmsprop_multi_(ps, gs, mss, **{**hyper, name: value})
    rmsprop_ops.rmsprop_(ps[0], gs[0], mss[0], **{**hyper, name: value})
    bad = "yes" if attr["type"] in ("bool", "enum") else float("nan")
    with pytest.raises((TypeError, ValueError), match=f"^{name}: "):
        rmsprop_ops.rmsprop_multi_(ps, gs, mss, **{**hyper, name: bad})


def test_per_tensor_lists_reach_the_core_by_name():
    lists = [a for a in ATTRS if a["scope"] == "list"]
    assert {a["name"] for a in lists} == {"lr_mults", "weight_decays"}
    for a in lists:
        ps, gs, mss = _arrays()
        _core.update(ps, gs, mss, None, None, None, list_names=True, **{a["name"]: [1.0, 0.5, 0.0]})
        with pytest.raises(ValueError, match=r"^(lr|weight_decay)\[1\]: expected a finite value >= 0, got -1.0"):
            _core.update(ps, gs, mss, None, None, None, list_names=True, **{a["name"]: [1.0, -1.0, 0.0]})


def test_unknown_keywords_are_refused_by_name():
    ps, gs, mss = _arrays()
    with pytest.raises(TypeError, match=r"^rmsprop_multi_\(\) got an unexpected keyword argument 'nesterovv'"):
        rmsprop_ops.rmsprop_multi_(ps, gs, mss, lr=0.1, rho=0.9, epsilon=1e-6, nesterovv=True)
    with pytest.raises(ValueError, match=r"^attr: no attribute or scalar input named 'bogus'"):
        _core.update(ps, gs, mss, None, None, None, bogus=1.0)


def test_generated_paddle_ops_hand_every_attribute_to_the_filler(monkeypatch):
    # _codegen renders C++ from the registry and needs no Paddle; the package's __init__ would import it.
    package = types.ModuleType("rmsprop_ops.paddle")
    package.__path__ = [os.path.join(os.path.dirname(rmsprop_ops.__file__), "paddle")]
    monkeypatch.setitem(sys.modules, "rmsprop_ops.paddle", package)
    monkeypatch.delitem(sys.modules, "rmsprop_ops.paddle._codegen", raising=False)
    _codegen = importlib.import_module("rmsprop_ops.paddle._codegen")
    monkeypatch.delitem(sys.modules, "rmsprop_ops.paddle._codegen")

    source = _codegen.render_source()
    for op in _codegen.CORE_OPS:
        for a in next(o for o in DOC["ops"] if o["name"] == op)["attrs"]:
            assert f'c.attr("{a["name"]}", at_{a["name"]});' in source
            assert f'"{a["name"]}: ' in source
    for i in MULTI["inputs"]:
        if i.get("scalar"):
            assert f'c.scalar("{i["name"]}", ' in source
    assert "rmsprop_ops_paddle::Attrs" not in source and "Slots" not in source


def test_mindspore_config_layout_is_the_registry():
    layout = DOC["config_layout"]
    assert layout["values"] == [a["name"] for a in SINGLE_VALUED]
    assert layout["lists"] == [a["name"] for a in ATTRS if a["scope"] == "list"]
    lib = ctypes.CDLL(rmsprop_ops.get_library())
    lib.rmsprop_ops_config_field.restype = ctypes.c_char_p
    for section, names in ((0, layout["values"]), (1, layout["lists"])):
        got = [lib.rmsprop_ops_config_field(section, i) for i in range(len(names) + 1)]
        assert [g.decode() for g in got[:-1]] == names and got[-1] is None


def test_flat_layout_has_one_definition():
    assert FLAT_ALIGN == DOC["flat_state"]["align"] == 16
    from rmsprop_ops import _flat

    assert _flat.flat_offsets is flat_offsets and _flat.FLAT_ALIGN == FLAT_ALIGN
    offsets, total = flat_offsets([3, 20, 0, 1, 16])
    assert offsets == [0, 16, 48, 48, 64] and total == 80  # test_c_abi runs flat.h's packing on the same sizes


def test_input_names_do_not_collide_with_attributes_in_paddle():
    # Paddle's generated op functions name an input by its lowercased name, next to the attributes: an
    # input "Step" beside an attribute "step" made a function with a duplicate argument.
    for op in DOC["ops"]:
        inputs = {i["name"].removesuffix("[]").lower() for i in op["inputs"]}
        assert not inputs & {a["name"] for a in op["attrs"]}, op["name"]
