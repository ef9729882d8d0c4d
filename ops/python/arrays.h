// Arrays at the Python boundary: NumPy arrays, DLPack capsules and DLPack producers turned into the C
// ABI's rmsprop_ops_tensor descriptors.
//
// Two phases, so that no Python code runs between reading a descriptor and the GIL-free kernel:
//   resolve()  takes an owned reference to the caller's object and, for a DLPack producer, calls
//              __dlpack_device__ / __dlpack__ (Python code: it may raise, mutate lists, switch threads);
//              a capsule is consumed and owned from then on;
//   describe() reads the NumPy array or the DLPack struct into the descriptor and checks its structure
//              (dtype, byte order, contiguity, shape, element count, address range), in C only.
// Every Held keeps its exporter alive (the object, the consumed capsule's manager) until the call returns.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "dlpack.h"
#include "rmsprop_ops/c_api.h"

namespace rmsprop_ops_py {

namespace py = pybind11;

// An argument's name for error messages ("grads[3]", or "grad" in a single-tensor call). Formatted only
// when a message needs it: a step over thousands of tensors would otherwise build thousands of strings.
struct ArgName {
  const char *single;
  const char *list;
  size_t index;
  bool in_list;
  std::string str() const { return in_list ? std::string(list) + "[" + std::to_string(index) + "]" : single; }
};

// What the call does with an argument: a tensor must be floating point; a scalar may also be a bool or an
// integer; a written one must be exported without a copy and be writable.
struct Use {
  bool tensor;
  bool written;
};

inline std::string type_name(py::handle h) { return Py_TYPE(h.ptr())->tp_name; }

[[noreturn]] inline void type_error(const std::string &msg) { throw py::type_error(msg); }
[[noreturn]] inline void value_error(const std::string &msg) { throw py::value_error(msg); }

// "ValueError: boom" for an exception raised by the caller's code, without running more of it than
// str() of the exception (and never failing because of it).
inline std::string describe_exception(py::error_already_set &e) {
  std::string what = e.type() ? std::string(reinterpret_cast<PyTypeObject *>(e.type().ptr())->tp_name) : "error";
  try {
    const std::string msg = py::str(e.value());
    if (!msg.empty()) what += ": " + msg;
  } catch (py::error_already_set &) {
    what += " (unprintable)";
  }
  return what;
}

// The caller's code (a producer's __dlpack__, a list's __iter__, a number's __float__) raised while we
// read an argument: a TypeError naming it. KeyboardInterrupt and other non-Exception exits pass through.
[[noreturn]] inline void raised_while(const std::string &name, const char *doing, py::error_already_set &e) {
  if (!e.matches(PyExc_Exception)) throw e;
  type_error(name + ": " + doing + " raised " + describe_exception(e));
}

// One argument: its descriptor, its name and use, and what keeps its memory alive. The descriptor's shape
// points into the exporter's own metadata (the NumPy array's dims, the DLPack tensor's shape), which
// lives as long as the Held. Movable only until the call starts (Helds live in a reserved vector).
struct Held {
  rmsprop_ops_tensor t{};
  ArgName name{};
  Use use{};
  bool numpy = false;                        // the owner is a NumPy array
  py::object owner;                          // the caller's object (array, producer or capsule)
  DLManagedTensor *dl = nullptr;             // a consumed legacy capsule's tensor, ours to delete
  DLManagedTensorVersioned *dlv = nullptr;   // a consumed versioned capsule's tensor, ours to delete
  Held() = default;
  Held(const Held &) = delete;
  Held &operator=(const Held &) = delete;
  Held(Held &&o) noexcept
      : t(o.t), name(o.name), use(o.use), numpy(o.numpy), owner(std::move(o.owner)), dl(o.dl), dlv(o.dlv) {
    o.dl = nullptr;
    o.dlv = nullptr;
  }
  Held &operator=(Held &&) = delete;
  ~Held() {  // runs with the GIL held: the producer's deleter may touch Python objects
    if (dl != nullptr && dl->deleter != nullptr) dl->deleter(dl);
    if (dlv != nullptr && dlv->deleter != nullptr) dlv->deleter(dlv);
  }
  const DLTensor *dlt() const { return dl != nullptr ? &dl->dl_tensor : dlv != nullptr ? &dlv->dl_tensor : nullptr; }
};

// ---- phase 1: take the object, consume a capsule ---------------------------------------------------

// Takes over an unconsumed DLPack capsule (renamed 'used_dltensor[_versioned]', as the protocol asks, so
// that its destructor leaves the tensor to us). `source` completes "expected " in messages: "" for a
// capsule passed directly, "__dlpack__() to return " for a producer's.
inline void consume_capsule(py::handle cap, Held &h, const char *source) {
  PyObject *c = cap.ptr();
  const char *cname = PyCapsule_GetName(c);
  if (cname == nullptr) PyErr_Clear();
  auto refuse = [&](const std::string &got) {  // formatted only on failure
    type_error(h.name.str() + ": expected " + source +
               "an unconsumed 'dltensor' or 'dltensor_versioned' DLPack capsule, got " + got);
  };
  if (cname != nullptr && std::strcmp(cname, "dltensor_versioned") == 0) {
    auto *m = static_cast<DLManagedTensorVersioned *>(PyCapsule_GetPointer(c, "dltensor_versioned"));
    if (m == nullptr) {
      PyErr_Clear();
      refuse("one holding no tensor");
    }
    if (m->version.major != kDLPackMajor)  // another struct layout: left to the capsule's own destructor
      type_error(h.name.str() + ": expected a DLPack tensor of major version " + std::to_string(kDLPackMajor) +
                 ", got version " + std::to_string(m->version.major) + "." + std::to_string(m->version.minor));
    if (PyCapsule_SetName(c, "used_dltensor_versioned") != 0) throw py::error_already_set();
    h.dlv = m;
    return;
  }
  if (cname != nullptr && std::strcmp(cname, "dltensor") == 0) {
    auto *m = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(c, "dltensor"));
    if (m == nullptr) {
      PyErr_Clear();
      refuse("one holding no tensor");
    }
    if (PyCapsule_SetName(c, "used_dltensor") != 0) throw py::error_already_set();
    h.dl = m;
    return;
  }
  const std::string got = cname ? cname : "";
  if (got == "used_dltensor" || got == "used_dltensor_versioned")
    refuse("one already consumed ('" + got + "'); a capsule can be used once");
  refuse("a capsule named '" + got + "'");
}

// One int of __dlpack_device__()'s answer, through __index__ (which is the caller's code).
inline int32_t device_field(py::handle item, const std::string &name, const char *what) {
  PyObject *idx = PyNumber_Index(item.ptr());
  if (idx == nullptr) {
    py::error_already_set e;
    if (!e.matches(PyExc_Exception)) throw e;
    type_error(name + ": expected __dlpack_device__() to return (device_type, device_id) as ints, got " + what +
               " of type " + type_name(item));
  }
  py::object owned = py::reinterpret_steal<py::object>(idx);
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(idx, &overflow);
  if (overflow != 0 || v < INT32_MIN || v > INT32_MAX)
    value_error(name + ": expected __dlpack_device__() to return a " + what + " in the int32 range, got " +
                std::string(py::str(owned)));
  return static_cast<int32_t>(v);
}

// `stream`: the cudaStream_t the update will run on (0: the legacy default stream, DLPack's 1), which the
// producer orders its pending work before.
inline void from_producer(py::handle obj, Held &h, intptr_t stream) {
  const std::string name = h.name.str();
  py::object dev;
  try {
    dev = obj.attr("__dlpack_device__")();
  } catch (py::error_already_set &e) {
    raised_while(name, "__dlpack_device__()", e);
  }
  if (!PyTuple_Check(dev.ptr()) || PyTuple_GET_SIZE(dev.ptr()) != 2)
    type_error(name + ": expected __dlpack_device__() to return a (device_type, device_id) tuple, got " +
               type_name(dev));
  const int32_t dev_type = device_field(PyTuple_GET_ITEM(dev.ptr(), 0), name, "device_type");
  // Only the type matters here (the capsule says where the memory is); Paddle answers (kDLCPU, None).
  if (PyTuple_GET_ITEM(dev.ptr(), 1) != Py_None) device_field(PyTuple_GET_ITEM(dev.ptr(), 1), name, "device_id");
  py::object cap;
  py::object fn;
  try {
    fn = obj.attr("__dlpack__");
  } catch (py::error_already_set &e) {
    raised_while(name, "reading __dlpack__", e);
  }
  const bool cuda = dev_type == kDLCUDA || dev_type == kDLCUDAManaged;
  const py::object stream_arg = cuda ? py::int_(stream == 0 ? intptr_t{1} : stream) : py::object(py::none());
  try {
    // DLPack 1.x first (it carries the read-only flag); a producer that predates max_version raises
    // TypeError for the keyword and is asked again the legacy way.
    try {
      cap = cuda ? fn(py::arg("stream") = stream_arg, py::arg("max_version") = py::make_tuple(kDLPackMajor, kDLPackMinor))
                 : fn(py::arg("max_version") = py::make_tuple(kDLPackMajor, kDLPackMinor));
    } catch (py::error_already_set &e) {
      if (!e.matches(PyExc_TypeError)) throw;
      cap = cuda ? fn(py::arg("stream") = stream_arg) : fn();
    }
  } catch (py::error_already_set &e) {  // the producer's refusal (sparse, requires grad, ...), named
    if (!e.matches(PyExc_Exception)) throw;
    type_error(name + ": expected an array exportable through DLPack, but __dlpack__() raised " +
               describe_exception(e));
  }
  if (!PyCapsule_CheckExact(cap.ptr()))
    type_error(name + ": expected __dlpack__() to return a DLPack capsule, got " + type_name(cap));
  consume_capsule(cap, h, "__dlpack__() to return ");
}

inline void resolve(py::handle obj, Held &h, intptr_t stream) {
  h.owner = py::reinterpret_borrow<py::object>(obj);
  if (py::isinstance<py::array>(obj)) {
    h.numpy = true;
    // describe() reads the dims and the dtype: their misses overlap with the next arguments' work.
    __builtin_prefetch(py::detail::array_proxy(obj.ptr())->dimensions);
    __builtin_prefetch(py::detail::array_proxy(obj.ptr())->descr);
  } else if (PyCapsule_CheckExact(obj.ptr())) {
    // A capsule made by the caller (the torch fast path of _dlpack.py): the producer's work is already
    // ordered before `stream`.
    consume_capsule(obj, h, "");
  } else if (py::hasattr(obj, "__dlpack__") && py::hasattr(obj, "__dlpack_device__")) {
    from_producer(obj, h, stream);
  } else {
    type_error(h.name.str() + ": expected a NumPy array or a DLPack-capable array, got " + type_name(obj));
  }
}

// ---- phase 2: read the descriptor (no Python code runs) ---------------------------------------------

constexpr const char *kFloatTypes = "a floating-point array (float32, float64, float16, bfloat16)";

inline bool little_endian() {
  const uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

inline int32_t numpy_dtype(const py::dtype &dt, const Held &h) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  int32_t code = RMSPROP_OPS_UNKNOWN;
  if (kind == 'f' && size == 4) code = RMSPROP_OPS_FLOAT32;
  else if (kind == 'f' && size == 8) code = RMSPROP_OPS_FLOAT64;
  else if (kind == 'f' && size == 2) code = RMSPROP_OPS_FLOAT16;
  else if (!h.use.tensor && kind == 'b') code = RMSPROP_OPS_BOOL;
  else if (!h.use.tensor && kind == 'i' && size == 4) code = RMSPROP_OPS_INT32;
  else if (!h.use.tensor && kind == 'i' && size == 8) code = RMSPROP_OPS_INT64;
  else if (kind == 'V' && size == 2 && std::string(py::str(dt)) == "bfloat16") code = RMSPROP_OPS_BFLOAT16;
  if (code == RMSPROP_OPS_UNKNOWN)
    type_error(h.name.str() + ": expected " + (h.use.tensor ? kFloatTypes : "a floating-point, bool or integer array") +
               ", got dtype " + std::string(py::str(dt)));
  // NumPy marks a native order '=' (or '|' for one byte); an explicit '<' or '>' is native only when it
  // matches this machine.
  const char order = dt.byteorder();
  if (order == (little_endian() ? '>' : '<'))
    type_error(h.name.str() + ": expected native byte order, got dtype '" + std::string(py::str(dt.attr("str"))) +
               "' (" + (order == '>' ? "big" : "little") + "-endian); the kernel would read its bytes as native " +
               "numbers (convert with a.astype(a.dtype.newbyteorder('='))" +
               (h.use.written ? ", then copy the result back" : "") + ")");
  return code;
}

inline void describe_numpy(const Held &h, rmsprop_ops_tensor &out) {
  const auto a = py::reinterpret_borrow<py::array>(h.owner);
  out.dtype = numpy_dtype(a.dtype(), h);
  if (!(a.flags() & py::array::c_style))
    value_error(h.name.str() + ": expected a C-contiguous array (the update is in place, so a contiguous copy " +
                "would not update yours), got one with strides " + std::string(py::str(a.attr("strides"))));
  static_assert(sizeof(*a.shape()) == sizeof(int64_t), "NumPy dims are int64 on the platforms we build for");
  out.shape = reinterpret_cast<const int64_t *>(a.shape());
  out.ndim = static_cast<int32_t>(a.ndim());
  out.data = const_cast<void *>(a.data());
  out.numel = a.size();
  out.writable = a.writeable() ? 1 : 0;
  out.device = RMSPROP_OPS_CPU;
}

inline int32_t dlpack_dtype(const DLDataType &dt, const Held &h) {
  if (dt.lanes == 1) {
    if (dt.code == kDLFloat && dt.bits == 32) return RMSPROP_OPS_FLOAT32;
    if (dt.code == kDLFloat && dt.bits == 64) return RMSPROP_OPS_FLOAT64;
    if (dt.code == kDLFloat && dt.bits == 16) return RMSPROP_OPS_FLOAT16;
    if (dt.code == kDLBfloat && dt.bits == 16) return RMSPROP_OPS_BFLOAT16;
    if (!h.use.tensor) {
      if ((dt.code == kDLBool || dt.code == kDLUInt) && dt.bits == 8) return RMSPROP_OPS_BOOL;
      if (dt.code == kDLInt && dt.bits == 32) return RMSPROP_OPS_INT32;
      if (dt.code == kDLInt && dt.bits == 64) return RMSPROP_OPS_INT64;
    }
  }
  static const char *const codes[] = {"int", "uint", "float", "opaque", "bfloat", "complex", "bool"};
  const std::string code = dt.code < 7 ? codes[dt.code] : "code" + std::to_string(dt.code);
  type_error(h.name.str() + ": expected " + (h.use.tensor ? kFloatTypes : "a floating-point, bool or integer array") +
             ", got dtype " + code + std::to_string(dt.bits) + (dt.lanes != 1 ? "x" + std::to_string(dt.lanes) : ""));
}

// A DLPack descriptor is the producer's claim: every field is checked before it is used, so a lying
// producer gets a named error instead of a kernel running over memory it does not have.
inline void describe_dlpack(const Held &h, rmsprop_ops_tensor &out) {
  const DLTensor &t = *h.dlt();
  auto bad = [&](const std::string &what) { value_error(h.name.str() + ": " + what + " (DLPack descriptor)"); };
  out.dtype = dlpack_dtype(t.dtype, h);
  if (t.ndim < 0) bad("expected ndim >= 0, got " + std::to_string(t.ndim));
  if (t.ndim > kMaxDims) bad("expected at most " + std::to_string(kMaxDims) + " dimensions, got " + std::to_string(t.ndim));
  if (t.ndim > 0 && t.shape == nullptr) bad("expected a shape array for " + std::to_string(t.ndim) + " dimensions, got NULL");
  int64_t numel = 1;
  bool overflow = false;
  for (int32_t d = 0; d < t.ndim; ++d) {
    if (t.shape[d] < 0) bad("expected dimensions >= 0, got " + std::to_string(t.shape[d]) + " in dimension " + std::to_string(d));
    overflow = overflow || __builtin_mul_overflow(numel, t.shape[d], &numel);
  }
  if (overflow) bad("expected a shape whose element count fits in int64, got one that overflows");
  out.shape = t.shape;
  out.ndim = t.ndim;
  if (t.strides != nullptr && numel > 1) {
    int64_t expect = 1;
    for (int32_t d = t.ndim - 1; d >= 0; --d) {
      if (t.shape[d] != 1 && t.strides[d] != expect)
        value_error(h.name.str() + ": expected a C-contiguous array (the update is in place, so a contiguous " +
                    "copy would not update yours), got a strided one");
      expect *= t.shape[d];
    }
  }
  const int64_t isz = (t.dtype.bits + 7) / 8;
  uintptr_t start = 0, end = 0;
  int64_t bytes = 0;
  if (t.byte_offset > static_cast<uint64_t>(INTPTR_MAX) ||
      __builtin_add_overflow(reinterpret_cast<uintptr_t>(t.data), static_cast<uintptr_t>(t.byte_offset), &start))
    bad("expected data + byte_offset inside the address space, got byte_offset " + std::to_string(t.byte_offset));
  if (numel > 0) {
    if (t.data == nullptr) bad("expected data for " + std::to_string(numel) + " elements, got NULL");
    if (__builtin_mul_overflow(numel, isz, &bytes) || __builtin_add_overflow(start, static_cast<uintptr_t>(bytes), &end))
      bad("expected " + std::to_string(numel) + " elements inside the address space, got a buffer past its end");
  }
  // The core reads "no data" as "argument absent"; a zero-size tensor exported without memory is neither.
  alignas(64) static char no_elements[64];
  out.data = numel == 0 && start == 0 ? static_cast<void *>(no_elements) : reinterpret_cast<void *>(start);
  out.numel = numel;
  const uint64_t flags = h.dlv != nullptr ? h.dlv->flags : 0;
  out.writable = (flags & kDLFlagReadOnly) ? 0 : 1;  // the legacy protocol carries no read-only flag
  if (h.use.written && (flags & kDLFlagIsCopied))
    value_error(h.name.str() + ": expected an array exported without a copy (it is updated in place), but the " +
                "producer flagged its DLPack tensor as a copy");
  if (t.device.device_type == kDLCPU || t.device.device_type == kDLCUDAHost)
    out.device = RMSPROP_OPS_CPU;
  else if (t.device.device_type == kDLCUDA || t.device.device_type == kDLCUDAManaged)
    out.device = RMSPROP_OPS_CUDA;
  else
    value_error(h.name.str() + ": expected a cpu or cuda array, got DLPack device type " +
                std::to_string(t.device.device_type));
}

// Into `out` directly: a descriptor written field by field and then copied whole stalls on store
// forwarding, once per argument.
inline void describe(const Held &h, rmsprop_ops_tensor &out) {
  if (h.numpy) describe_numpy(h, out);
  else describe_dlpack(h, out);
}

inline void describe(Held &h) { describe(h, h.t); }

}  // namespace rmsprop_ops_py
