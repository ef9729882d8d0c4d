// Binding of the rows C API (rmsprop_ops/rows_api.h). Included by module.cpp inside its anonymous
// namespace, after its argument helpers (arrays.h's Held / resolve / describe, read_attr, check), so that
// arrays reach the rows API through the same conversion as the dense update.
#pragma once

#include "rmsprop_ops/rows_api.h"

// An integer array (indices, counters): NumPy arrays are checked here, where the dtype can be named;
// DLPack arrays are taken as the dense update takes scalars, and the core checks their dtype.
inline void check_int_array(py::handle obj, const char *name, const char *expected) {
  if (py::isinstance<py::array>(obj)) {
    const py::dtype dt = py::reinterpret_borrow<py::array>(obj).dtype();
    if (dt.kind() != 'i' || (dt.itemsize() != 4 && dt.itemsize() != 8))
      type_error(std::string(name) + ": expected " + expected + ", got dtype " + std::string(py::str(dt)));
  }
}

// The arguments as the dense update reads them (arrays.h): every array resolved first (the caller's code
// may run), then described, in C only, right before the GIL is released; each Held keeps its exporter
// alive until the call returns.
inline void rows_call(py::object param, py::object indices, py::object values, py::object mean_square,
                      py::object moment, py::object mean_grad, py::object master_param, py::object last_step,
                      py::object step, py::object lr, double lr_mult, double rho, double epsilon, double momentum,
                      bool centered, bool eps_in_sqrt, bool lr_in_momentum, double weight_decay,
                      int weight_decay_mode, py::object rescale_grad, double clip_gradient, double clip_weights,
                      bool clip_after_weight_decay, py::object skip_update, int mode, bool catch_up,
                      intptr_t stream, bool check_only) {
  if (param.is_none()) type_error("param: expected an array, got None");
  if (mean_square.is_none()) type_error("mean_square: expected an array, got None");
  if (!catch_up && indices.is_none()) type_error("indices: expected an int64 or int32 array, got None");
  if (!catch_up && values.is_none()) type_error("values: expected an array, got None");
  std::vector<Held> keep;
  keep.reserve(12);
  rmsprop_ops_rows r{};
  struct Slot {
    rmsprop_ops_tensor *dst;
    Held *held;
  };
  std::vector<Slot> slots;
  auto take = [&](py::handle obj, const char *name, bool tensor, bool written, rmsprop_ops_tensor *dst,
                  const char *int_expected = nullptr) {
    if (obj.is_none()) return;
    if (int_expected != nullptr) check_int_array(obj, name, int_expected);
    Held &h = keep.emplace_back();
    h.name = ArgName{name, name, 0, false};
    h.use = Use{tensor, written};
    if (int_expected == nullptr) {
      resolve(obj, h, stream);
    } else {
      try {
        resolve(obj, h, stream);
      } catch (py::type_error &e) {
        const std::string msg = e.what();
        const size_t at = msg.find("got ");
        type_error(std::string(name) + ": expected " + int_expected +
                   (at == std::string::npos ? "" : ", " + msg.substr(at)));
      }
    }
    slots.push_back({dst, &h});
  };
  take(param, "param", true, true, &r.param);
  take(mean_square, "mean_square", true, true, &r.mean_square);
  take(moment, "moment", true, true, &r.moment);
  take(mean_grad, "mean_grad", true, true, &r.mean_grad);
  take(master_param, "master_param", true, true, &r.master_param);
  take(last_step, "last_step", false, true, &r.last_step, "an int64 array of per-row counters");
  take(step, "step", false, true, &r.step, "a one-element int64 array");
  take(indices, "indices", false, false, &r.indices, "an int64 or int32 array");
  if (!catch_up) take(values, "values", true, false, &r.values);
  std::vector<Attr> scalars;
  scalars.reserve(3);
  const std::pair<const char *, py::object> given[] = {{"lr", lr}, {"rescale_grad", rescale_grad},
                                                       {"skip_update", skip_update}};
  for (const auto &g : given) {
    scalars.push_back(read_attr(g.first, g.second, keep, stream));
    Attr &a = scalars.back();
    if (a.held != nullptr) {
      a.held->name = ArgName{g.first, g.first, 0, false};
      resolve(g.second, *a.held, stream);
    }
  }

  for (Slot &s : slots) {  // phase 2: no Python code from here to the kernel
    describe(*s.held);
    *s.dst = s.held->t;
  }
  r.lr_mult = lr_mult;
  r.weight_decay = weight_decay;
  r.weight_decay_mode = weight_decay_mode;
  r.mode = mode;

  rmsprop_ops_hparams hp;
  rmsprop_ops_default_hparams(&hp);
  hp.rho = rho;
  hp.epsilon = epsilon;
  hp.momentum = momentum;
  hp.clip_gradient = clip_gradient;
  hp.clip_weights = clip_weights;
  hp.centered = centered;
  hp.eps_in_sqrt = eps_in_sqrt;
  hp.lr_in_momentum = lr_in_momentum;
  hp.clip_after_weight_decay = clip_after_weight_decay;
  char err[1024];
  for (Attr &a : scalars) {
    if (a.kind == Attr::kNumber) {
      check(rmsprop_ops_set_attr(&hp, nullptr, 0, a.name.c_str(), a.value, err, sizeof err), err);
      continue;
    }
    if (a.kind != Attr::kArray) type_error(a.name + ": expected a number or a one-element array, got a list");
    Held &h = *a.held;
    describe(h);
    if (h.t.numel != 1)
      value_error(a.name + ": expected a number or a one-element array, got an array of " +
                  std::to_string(h.t.numel) + " elements");
    if (h.t.device != r.param.device)
      value_error(a.name + ": expected an array on the param's device, got one on another");
    check(rmsprop_ops_set_scalar(&hp, a.name.c_str(), h.t.data, h.t.dtype, err, sizeof err), err);
  }

  const uint32_t flags = check_only ? RMSPROP_OPS_FLAG_CHECK_ONLY : 0u;
  int code;
  {
    py::gil_scoped_release release;
    void *s = reinterpret_cast<void *>(stream);
    code = catch_up ? rmsprop_ops_rows_catch_up(&r, &hp, s, flags, err, sizeof err)
                    : rmsprop_ops_rows_update(&r, &hp, s, flags, err, sizeof err);
  }
  check(code, err);
}

inline void bind_rows(py::module_ &m) {
  m.def("rows", &rows_call, py::arg("param"), py::arg("indices"), py::arg("values"), py::arg("mean_square"),
        py::arg("moment"), py::arg("mean_grad"), py::arg("master_param"), py::arg("last_step"), py::arg("step"),
        py::kw_only(), py::arg("lr"), py::arg("lr_mult"), py::arg("rho"), py::arg("epsilon"), py::arg("momentum"),
        py::arg("centered"), py::arg("eps_in_sqrt"), py::arg("lr_in_momentum"), py::arg("weight_decay"),
        py::arg("weight_decay_mode"), py::arg("rescale_grad"), py::arg("clip_gradient"), py::arg("clip_weights"),
        py::arg("clip_after_weight_decay"), py::arg("skip_update"), py::arg("mode"), py::arg("catch_up"),
        py::arg("stream") = 0, py::arg("check_only") = false);
}
