// Binding of the rows C API (rmsprop_ops/rows_api.h). Included by module.cpp inside its anonymous
// namespace, after its array helpers (Held, ArgName, parse_array, parse_scalar, raise_status), so that
// arrays reach the rows API through the same conversion as the dense update.
#pragma once

#include "rmsprop_ops/rows_api.h"

// An integer array (indices, counters): NumPy arrays are checked here, where the dtype can be named;
// DLPack arrays are taken as the dense update takes scalars, and the core checks their dtype.
inline void parse_int_array(py::handle obj, const char *name, const char *expected, Held &h, intptr_t stream) {
  if (py::isinstance<py::array>(obj)) {
    const py::dtype dt = py::reinterpret_borrow<py::array>(obj).dtype();
    if (dt.kind() != 'i' || (dt.itemsize() != 4 && dt.itemsize() != 8))
      type_error(std::string(name) + ": expected " + expected + ", got dtype " + std::string(py::str(dt)));
  }
  try {
    parse_array(obj, scalar_name(name), false, h, stream);
  } catch (py::type_error &e) {
    const std::string msg = e.what();
    const size_t at = msg.find("got ");
    type_error(std::string(name) + ": expected " + expected + (at == std::string::npos ? "" : ", " + msg.substr(at)));
  }
}

inline void rows_call(py::object param, py::object indices, py::object values, py::object mean_square,
                      py::object moment, py::object mean_grad, py::object master_param, py::object last_step,
                      py::object step, py::object lr, double lr_mult, double rho, double epsilon, double momentum,
                      bool centered, bool eps_in_sqrt, bool lr_in_momentum, double weight_decay,
                      int weight_decay_mode, py::object rescale_grad, double clip_gradient, double clip_weights,
                      bool clip_after_weight_decay, py::object skip_update, int mode, bool catch_up,
                      intptr_t stream, bool check_only) {
  std::deque<Held> keep;
  auto tensor = [&](py::handle obj, const char *name) -> rmsprop_ops_tensor {
    if (obj.is_none()) return rmsprop_ops_tensor{};
    Held &h = keep.emplace_back();
    parse_array(obj, scalar_name(name), true, h, stream);
    return h.t;
  };
  auto ints = [&](py::handle obj, const char *name, const char *expected) -> rmsprop_ops_tensor {
    if (obj.is_none()) return rmsprop_ops_tensor{};
    Held &h = keep.emplace_back();
    parse_int_array(obj, name, expected, h, stream);
    return h.t;
  };
  if (param.is_none()) type_error("param: expected an array, got None");
  if (mean_square.is_none()) type_error("mean_square: expected an array, got None");
  if (!catch_up && indices.is_none()) type_error("indices: expected an int64 or int32 array, got None");
  rmsprop_ops_rows r{};
  r.param = tensor(param, "param");
  r.mean_square = tensor(mean_square, "mean_square");
  r.moment = tensor(moment, "moment");
  r.mean_grad = tensor(mean_grad, "mean_grad");
  r.master_param = tensor(master_param, "master_param");
  r.last_step = ints(last_step, "last_step", "an int64 array of per-row counters");
  r.step = ints(step, "step", "a one-element int64 array");
  r.indices = ints(indices, "indices", "an int64 or int32 array");
  if (!catch_up) {
    if (values.is_none()) type_error("values: expected an array, got None");
    r.values = tensor(values, "values");
  }
  r.lr_mult = lr_mult;
  r.weight_decay = weight_decay;
  r.weight_decay_mode = weight_decay_mode;
  r.mode = mode;

  rmsprop_ops_hparams hp;
  rmsprop_ops_default_hparams(&hp);
  parse_scalar(lr, "lr", hp.lr, keep, stream, r.param.device);
  parse_scalar(rescale_grad, "rescale_grad", hp.rescale_grad, keep, stream, r.param.device);
  parse_scalar(skip_update, "skip_update", hp.skip_update, keep, stream, r.param.device);
  hp.rho = rho;
  hp.epsilon = epsilon;
  hp.momentum = momentum;
  hp.clip_gradient = clip_gradient;
  hp.clip_weights = clip_weights;
  hp.centered = centered;
  hp.eps_in_sqrt = eps_in_sqrt;
  hp.lr_in_momentum = lr_in_momentum;
  hp.clip_after_weight_decay = clip_after_weight_decay;

  const uint32_t flags = check_only ? RMSPROP_OPS_FLAG_CHECK_ONLY : 0u;
  char err[1024];
  int code;
  {
    py::gil_scoped_release release;
    void *s = reinterpret_cast<void *>(stream);
    code = catch_up ? rmsprop_ops_rows_catch_up(&r, &hp, s, flags, err, sizeof err)
                    : rmsprop_ops_rows_update(&r, &hp, s, flags, err, sizeof err);
  }
  raise_status(code, err);
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
