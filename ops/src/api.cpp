// The C API: validation of a whole call before anything is touched, then dispatch to a kernel.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "registry.h"
#include "rmsprop_ops/dtypes.h"
#include "rmsprop_ops/format.h"
#include "thread_pool.h"

namespace rmsprop_ops {
namespace {

enum Role { kParam, kGrad, kMeanSquare, kMoment, kMeanGrad, kMaster, kNumRoles };
const char *const kSingleNames[kNumRoles] = {"param", "grad", "mean_square", "moment", "mean_grad",
                                             "master_param"};
const char *const kListNames[kNumRoles] = {"params", "grads", "mean_squares", "moments", "mean_grads",
                                           "master_params"};
// The scalars given by pointer (registry scalar inputs) take part in the overlap check as roles after the
// tensors: a learning rate stored inside a param would be read by one CUDA block while another writes it.

const rmsprop_ops_tensor &member(const rmsprop_ops_tensor_set &s, int role) {
  switch (role) {
    case kParam: return s.param;
    case kGrad: return s.grad;
    case kMeanSquare: return s.mean_square;
    case kMoment: return s.moment;
    case kMeanGrad: return s.mean_grad;
    default: return s.master_param;
  }
}

struct Namer {
  bool list;
  std::string operator()(int role, int64_t k) const {
    if (role >= kNumRoles) return scalar_inputs()[static_cast<size_t>(role - kNumRoles)].arg;
    return list ? std::string(kListNames[role]) + "[" + std::to_string(k) + "]" : kSingleNames[role];
  }
};

[[noreturn]] void fail(int code, const std::string &msg) { throw ArgError{code, msg}; }

std::string shape_str(const rmsprop_ops_tensor &t) {
  if (t.shape == nullptr) return "(" + std::to_string(t.numel) + " elements)";
  std::string s = "(";
  for (int32_t d = 0; d < t.ndim; ++d) s += (d ? ", " : "") + std::to_string(t.shape[d]);
  return s + (t.ndim == 1 ? ",)" : ")");
}

bool same_shape(const rmsprop_ops_tensor &a, const rmsprop_ops_tensor &b) {
  if (a.numel != b.numel) return false;
  if (a.shape == nullptr || b.shape == nullptr) return true;
  if (a.ndim != b.ndim) return false;
  for (int32_t d = 0; d < a.ndim; ++d)
    if (a.shape[d] != b.shape[d]) return false;
  return true;
}

struct Range {
  uintptr_t lo, hi;
  bool written;
  int role;
  int64_t set;
};

// The first byte past a buffer of numel elements of isz bytes at addr, or 0 when that does not fit the
// address space (a lying descriptor: the overlap check must not wrap around).
uintptr_t end_address(uintptr_t addr, int64_t numel, int64_t isz) {
  int64_t bytes = 0;
  uintptr_t end = 0;
  if (__builtin_mul_overflow(numel, isz, &bytes) || __builtin_add_overflow(addr, static_cast<uintptr_t>(bytes), &end))
    return 0;
  return end;
}

// What every descriptor must satisfy before its numbers are trusted: no negative counts, a shape that
// holds exactly numel elements, memory for its elements that fits the address space. (An unknown dtype is
// refused by the dtype checks, which can say what was expected.) `name` is formatted only on failure.
template <typename Name>
void check_descriptor(const rmsprop_ops_tensor &t, const Name &name) {
  if (t.numel < 0)
    fail(RMSPROP_OPS_VALUE_ERROR, name() + ": expected an element count >= 0, got " + std::to_string(t.numel));
  if (t.ndim < 0) fail(RMSPROP_OPS_VALUE_ERROR, name() + ": expected ndim >= 0, got " + std::to_string(t.ndim));
  if (t.shape != nullptr) {
    int64_t count = 1;
    bool overflow = false;
    for (int32_t d = 0; d < t.ndim; ++d) {
      if (t.shape[d] < 0)
        fail(RMSPROP_OPS_VALUE_ERROR, name() + ": expected dimensions >= 0, got shape " + shape_str(t));
      overflow = overflow || __builtin_mul_overflow(count, t.shape[d], &count);
    }
    // A zero dimension makes the count 0 whatever the others are; an overflow elsewhere is still a lie.
    if (overflow)
      fail(RMSPROP_OPS_VALUE_ERROR, name() + ": expected a shape whose element count fits in int64, got " +
                                        shape_str(t));
    if (count != t.numel)
      fail(RMSPROP_OPS_VALUE_ERROR, name() + ": expected numel to match shape " + shape_str(t) + " (" +
                                        std::to_string(count) + " elements), got " + std::to_string(t.numel));
  }
  if (t.numel > 0 && dtype_size(t.dtype) > 0 &&
      end_address(reinterpret_cast<uintptr_t>(t.data), t.numel, dtype_size(t.dtype)) == 0)
    fail(RMSPROP_OPS_VALUE_ERROR, name() + ": expected " + std::to_string(t.numel) + " elements of " +
                                      dtype_name(t.dtype) + " to fit in the address space, got a buffer past its end");
}

void check_scalar(const rmsprop_ops_hparams &hp, const ScalarInputSpec &spec) {
  const auto &s = *reinterpret_cast<const rmsprop_ops_scalar *>(reinterpret_cast<const char *>(&hp) + spec.offset);
  const char *name = spec.arg;
  const bool float_only = spec.float_only;
  if (s.ptr == nullptr) return;
  const bool is_float = s.dtype == RMSPROP_OPS_FLOAT32 || s.dtype == RMSPROP_OPS_FLOAT64 ||
                        s.dtype == RMSPROP_OPS_FLOAT16 || s.dtype == RMSPROP_OPS_BFLOAT16;
  const bool ok = is_float || (!float_only && (s.dtype == RMSPROP_OPS_BOOL || s.dtype == RMSPROP_OPS_INT32 ||
                                               s.dtype == RMSPROP_OPS_INT64));
  if (!ok)
    fail(RMSPROP_OPS_TYPE_ERROR, std::string(name) + ": expected a " +
                                     (float_only ? "floating-point" : "bool or numeric") + " scalar, got dtype " +
                                     dtype_name(s.dtype));
  const uintptr_t addr = reinterpret_cast<uintptr_t>(s.ptr);
  const auto isz = static_cast<uintptr_t>(dtype_size(s.dtype));
  if (addr % isz != 0)
    fail(RMSPROP_OPS_VALUE_ERROR, std::string(name) + ": expected memory aligned to " + std::to_string(isz) +
                                      " bytes for " + dtype_name(s.dtype) + ", got address % " + std::to_string(isz) +
                                      " = " + std::to_string(addr % isz));
  if (end_address(addr, 1, dtype_size(s.dtype)) == 0)
    fail(RMSPROP_OPS_VALUE_ERROR, std::string(name) + ": expected a scalar inside the address space");
}

const char *device_name(int32_t d) { return d == RMSPROP_OPS_CUDA ? "cuda" : d == RMSPROP_OPS_CPU ? "cpu" : "?"; }

// Everything that can be wrong with a call, checked before any kernel runs. Returns the launch.
Launch validate(const rmsprop_ops_tensor_set *sets, int64_t nsets, const rmsprop_ops_hparams *hp,
                uint32_t flags) {
  if (hp == nullptr) fail(RMSPROP_OPS_VALUE_ERROR, "hparams: expected a pointer, got NULL");
  if (nsets < 0) fail(RMSPROP_OPS_VALUE_ERROR, "nsets: expected >= 0, got " + std::to_string(nsets));
  if (nsets > 0 && sets == nullptr) fail(RMSPROP_OPS_VALUE_ERROR, "sets: expected a pointer, got NULL");
  validate_hparams(*hp);
  for (const ScalarInputSpec &spec : scalar_inputs()) check_scalar(*hp, spec);

  const Namer name{(flags & RMSPROP_OPS_FLAG_LIST_NAMES) != 0};
  Launch l{sets, nsets, hp, -1, hp->centered != 0, false, false};
  if (nsets == 0) return l;

  const rmsprop_ops_tensor_set &first = sets[0];
  l.param_dtype = first.param.dtype;
  l.momentum = first.moment.data != nullptr;
  l.master = first.master_param.data != nullptr;
  const int32_t device = first.param.device;
  if (device != RMSPROP_OPS_CPU && device != RMSPROP_OPS_CUDA)
    fail(RMSPROP_OPS_VALUE_ERROR, name(kParam, 0) + ": expected a cpu or cuda tensor, got device code " +
                                      std::to_string(device));
  if (device == RMSPROP_OPS_CPU) validate_host_scalars(*hp);  // scalars live where the tensors live
  std::vector<Range> ranges;
  ranges.reserve(static_cast<size_t>(nsets) * 4 + scalar_inputs().size());
  for (size_t i = 0; i < scalar_inputs().size(); ++i) {
    const auto &sc = *reinterpret_cast<const rmsprop_ops_scalar *>(reinterpret_cast<const char *>(hp) +
                                                                     scalar_inputs()[i].offset);
    if (sc.ptr == nullptr) continue;
    const auto lo = reinterpret_cast<uintptr_t>(sc.ptr);
    ranges.push_back({lo, lo + static_cast<uintptr_t>(dtype_size(sc.dtype)), false, kNumRoles + static_cast<int>(i), 0});
  }

  for (int64_t k = 0; k < nsets; ++k) {
    const rmsprop_ops_tensor_set &s = sets[k];
    for (int role = 0; role < kNumRoles; ++role) {
      const rmsprop_ops_tensor &t = member(s, role);
      if (t.data != nullptr || role == kParam) check_descriptor(t, [&] { return name(role, k); });
    }
    const int32_t pd = s.param.dtype;
    if (s.param.data == nullptr && s.param.numel > 0) fail(RMSPROP_OPS_VALUE_ERROR, name(kParam, k) + ": missing");
    const int32_t sd = state_dtype_for(pd);
    if (sd < 0)
      fail(RMSPROP_OPS_TYPE_ERROR, name(kParam, k) + ": expected a floating-point dtype (float32, float64, "
                                                     "float16, bfloat16), got " + dtype_name(pd));
    if (pd != l.param_dtype)
      fail(RMSPROP_OPS_TYPE_ERROR, name(kParam, k) + ": expected " + dtype_name(l.param_dtype) +
                                       " like " + name(kParam, 0) + ", got " + dtype_name(pd) +
                                       " (one call updates params of one dtype)");
    // Which optional buffers are present must agree across the call.
    if (l.momentum && s.moment.data == nullptr && s.param.numel > 0)
      fail(RMSPROP_OPS_VALUE_ERROR, name(kMoment, k) + ": expected an array (the other params have moments), got None");
    if (!l.momentum && s.moment.data != nullptr)
      fail(RMSPROP_OPS_VALUE_ERROR, name(kMoment, k) + ": expected None like " + name(kMoment, 0) + ", got an array");
    if (l.master && s.master_param.data == nullptr && s.param.numel > 0)
      fail(RMSPROP_OPS_VALUE_ERROR, name(kMaster, k) + ": expected an array (the other params have master weights), got None");
    if (!l.master && s.master_param.data != nullptr)
      fail(RMSPROP_OPS_VALUE_ERROR, name(kMaster, k) + ": expected None like " + name(kMaster, 0) + ", got an array");
    if (l.centered && s.mean_grad.data == nullptr && s.param.numel > 0)
      fail(RMSPROP_OPS_VALUE_ERROR, name(kMeanGrad, k) + ": expected an array (centered=True needs the mean gradient), got None");
    if (!l.centered && s.mean_grad.data != nullptr)
      fail(RMSPROP_OPS_VALUE_ERROR, name(kMeanGrad, k) + ": expected None when centered=False, got an array");
    if (hp->momentum > 0 && !l.momentum)
      fail(RMSPROP_OPS_VALUE_ERROR, name(kMoment, k) + ": expected an array (momentum=" + py_repr(hp->momentum) +
                                        " > 0 needs a moment buffer), got None");
    if (l.master && pd != RMSPROP_OPS_FLOAT16 && pd != RMSPROP_OPS_BFLOAT16)
      fail(RMSPROP_OPS_TYPE_ERROR, name(kMaster, k) + ": master weights are for float16/bfloat16 params, got a " +
                                       dtype_name(pd) + " param");

    validate_tensor_attrs(s, k, name.list);

    for (int role = 0; role < kNumRoles; ++role) {
      const rmsprop_ops_tensor &t = member(s, role);
      if (t.data == nullptr) {
        if ((role == kGrad || role == kMeanSquare) && s.param.numel > 0)
          fail(RMSPROP_OPS_VALUE_ERROR, name(role, k) + ": expected an array, got None");
        continue;
      }
      const int32_t want = role == kParam || role == kGrad ? pd : sd;
      if (t.dtype != want)
        fail(RMSPROP_OPS_TYPE_ERROR, name(role, k) + ": expected dtype " + dtype_name(want) +
                                         (role == kGrad ? " (the param's dtype)" : " (the param's math type)") +
                                         ", got " + dtype_name(t.dtype));
      if (role != kParam && !same_shape(t, s.param))
        fail(RMSPROP_OPS_VALUE_ERROR, name(role, k) + ": expected shape " + shape_str(s.param) + " like " +
                                          name(kParam, k) + ", got " + shape_str(t));
      if (t.device != device)
        fail(RMSPROP_OPS_VALUE_ERROR, name(role, k) + ": expected a tensor on " + device_name(device) + " like " +
                                          name(kParam, 0) + ", got one on " + device_name(t.device) +
                                          (t.device == RMSPROP_OPS_CPU || t.device == RMSPROP_OPS_CUDA
                                               ? std::string()
                                               : " (device code " + std::to_string(t.device) + ")"));
      const bool written = role != kGrad;
      if (written && !t.writable)
        fail(RMSPROP_OPS_VALUE_ERROR, name(role, k) + ": expected a writable array (it is updated in place), "
                                                      "got a read-only one");
      const uintptr_t lo = reinterpret_cast<uintptr_t>(t.data);
      const int64_t isz = dtype_size(t.dtype);
      if (lo % static_cast<uintptr_t>(isz) != 0)
        fail(RMSPROP_OPS_VALUE_ERROR, name(role, k) + ": expected memory aligned to " + std::to_string(isz) +
                                          " bytes for " + dtype_name(t.dtype) + ", got address % " +
                                          std::to_string(isz) + " = " + std::to_string(lo % isz));
      if (t.numel > 0) ranges.push_back({lo, end_address(lo, t.numel, isz), written, role, k});
    }
  }
  if (device == RMSPROP_OPS_CUDA && !built_with_cuda())
    fail(RMSPROP_OPS_NOT_IMPLEMENTED, name(kParam, 0) + ": got a CUDA tensor, but rmsprop_ops was built "
                                                        "without CUDA");

  // Memory overlap: sweep the ranges by start address; a range overlaps an earlier one iff it starts
  // before the largest end seen so far. Only overlaps involving a written buffer are errors.
  // Ties broken by call order, so that the message names the later argument.
  std::sort(ranges.begin(), ranges.end(), [](const Range &a, const Range &b) {
    return a.lo != b.lo ? a.lo < b.lo : (a.set != b.set ? a.set < b.set : a.role < b.role);
  });
  const Range *far_any = nullptr, *far_written = nullptr;
  for (const Range &r : ranges) {
    const Range *hit = nullptr;
    if (far_written != nullptr && r.lo < far_written->hi) hit = far_written;
    else if (r.written && far_any != nullptr && r.lo < far_any->hi) hit = far_any;
    if (hit != nullptr) {
      // A scalar inside a tensor is the scalar's fault: it is named first.
      const bool swap = hit->role >= kNumRoles && r.role < kNumRoles;
      const Range &a = swap ? *hit : r, &b = swap ? r : *hit;
      fail(RMSPROP_OPS_VALUE_ERROR, name(a.role, a.set) + ": memory overlaps " + name(b.role, b.set) +
                                        " (every updated buffer needs memory of its own)");
    }
    if (far_any == nullptr || r.hi > far_any->hi) far_any = &r;
    if (r.written && (far_written == nullptr || r.hi > far_written->hi)) far_written = &r;
  }
  return l;
}

void write_err(char *err, size_t errlen, const std::string &msg) {
  if (err == nullptr || errlen == 0) return;
  const size_t n = std::min(errlen - 1, msg.size());
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

// Runs fn, turning what it throws into a status and a message: nothing crosses the C ABI but those.
template <typename Fn>
int guarded(char *err, size_t errlen, const Fn &fn) {
  write_err(err, errlen, "");
  try {
    fn();
    return RMSPROP_OPS_OK;
  } catch (const ArgError &e) {
    write_err(err, errlen, e.message);
    return e.code;
  } catch (const std::exception &e) {
    write_err(err, errlen, e.what());
    return RMSPROP_OPS_RUNTIME_ERROR;
  } catch (...) {
    write_err(err, errlen, "rmsprop_ops: unknown C++ exception");
    return RMSPROP_OPS_RUNTIME_ERROR;
  }
}

// The op counters (rmsprop_ops_op_stats): relaxed, since they order nothing; one add each per call.
struct DeviceCounters {
  std::atomic<int64_t> calls{0}, sets{0}, elements{0};
};
DeviceCounters g_counters[2];

void count_call(const rmsprop_ops_tensor_set *sets, int64_t nsets) {
  int64_t elements = 0;
  for (int64_t k = 0; k < nsets; ++k) elements += sets[k].param.numel;
  DeviceCounters &c = g_counters[sets[0].param.device == RMSPROP_OPS_CUDA ? 1 : 0];
  c.calls.fetch_add(1, std::memory_order_relaxed);
  c.sets.fetch_add(nsets, std::memory_order_relaxed);
  c.elements.fetch_add(elements, std::memory_order_relaxed);
}

}  // namespace
}  // namespace rmsprop_ops

using namespace rmsprop_ops;

extern "C" {

int rmsprop_ops_abi_version(void) { return RMSPROP_OPS_ABI_VERSION; }

void rmsprop_ops_default_hparams(rmsprop_ops_hparams *hp) {
  if (hp != nullptr) default_hparams(*hp);
}

void rmsprop_ops_default_tensor_set(rmsprop_ops_tensor_set *set) {
  if (set != nullptr) default_tensor_set(*set);
}

int rmsprop_ops_update(const rmsprop_ops_tensor_set *sets, int64_t nsets, const rmsprop_ops_hparams *hp,
                       void *stream, uint32_t flags, char *err, size_t errlen) {
  write_err(err, errlen, "");
  try {
    const Launch l = validate(sets, nsets, hp, flags);
    if ((flags & RMSPROP_OPS_FLAG_CHECK_ONLY) || nsets == 0) return RMSPROP_OPS_OK;
    if (flags & RMSPROP_OPS_FLAG_BANDWIDTH_PROBE) {
      if (l.param_dtype != RMSPROP_OPS_FLOAT32 || sets[0].param.device != RMSPROP_OPS_CPU || l.master)
        fail(RMSPROP_OPS_VALUE_ERROR, "params: the bandwidth probe takes float32 CPU tensors without master weights");
      bandwidth_probe_cpu(sets, nsets);
      return RMSPROP_OPS_OK;
    }
    if (sets[0].param.device == RMSPROP_OPS_CUDA)
      run_cuda(l, stream);
    else
      run_cpu(l);
    count_call(sets, nsets);
    return RMSPROP_OPS_OK;
  } catch (const ArgError &e) {
    write_err(err, errlen, e.message);
    return e.code;
  } catch (const std::invalid_argument &e) {
    write_err(err, errlen, e.what());
    return RMSPROP_OPS_NOT_IMPLEMENTED;
  } catch (const std::exception &e) {
    write_err(err, errlen, e.what());
    return RMSPROP_OPS_RUNTIME_ERROR;
  } catch (...) {
    write_err(err, errlen, "rmsprop_ops: unknown C++ exception");
    return RMSPROP_OPS_RUNTIME_ERROR;
  }
}

const char *rmsprop_ops_registry_json(void) { return registry_json().c_str(); }

int rmsprop_ops_set_attr(rmsprop_ops_hparams *hp, rmsprop_ops_tensor_set *sets, int64_t nsets, const char *name,
                         double value, char *err, size_t errlen) {
  return guarded(err, errlen, [&] {
    if (hp == nullptr || name == nullptr || nsets < 0 || (nsets > 0 && sets == nullptr))
      fail(RMSPROP_OPS_VALUE_ERROR, "set_attr: expected hparams, a name and nsets sets, got NULL or nsets < 0");
    set_attr(*hp, sets, nsets, name, value);
  });
}

int rmsprop_ops_set_attr_list(rmsprop_ops_tensor_set *sets, int64_t nsets, const char *name, const double *values,
                              int64_t n, char *err, size_t errlen) {
  return guarded(err, errlen, [&] {
    if (name == nullptr || nsets < 0 || n < 0 || (nsets > 0 && sets == nullptr) || (n > 0 && values == nullptr))
      fail(RMSPROP_OPS_VALUE_ERROR, "set_attr_list: expected a name, nsets sets and n values, got NULL or a negative count");
    set_attr_list(sets, nsets, name, values, n);
  });
}

int rmsprop_ops_set_scalar(rmsprop_ops_hparams *hp, const char *name, const void *ptr, int32_t dtype, char *err,
                           size_t errlen) {
  return guarded(err, errlen, [&] {
    if (hp == nullptr || name == nullptr) fail(RMSPROP_OPS_VALUE_ERROR, "set_scalar: expected hparams and a name, got NULL");
    set_scalar(*hp, name, ptr, dtype);
  });
}

const char *rmsprop_ops_config_field(int32_t section, int32_t i) {
  const auto &names = section == RMSPROP_OPS_CONFIG_VALUES ? config_values() : config_lists();
  if (section != RMSPROP_OPS_CONFIG_VALUES && section != RMSPROP_OPS_CONFIG_LISTS) return nullptr;
  return i >= 0 && static_cast<size_t>(i) < names.size() ? names[static_cast<size_t>(i)]->name : nullptr;
}

int rmsprop_ops_check_attr(const char *op_name, const char *attr, double value, char *err, size_t errlen) {
  write_err(err, errlen, "");
  const OpSchema *op = find_op(op_name ? op_name : "");
  if (op == nullptr) {
    write_err(err, errlen, std::string("op: no op named '") + (op_name ? op_name : "") + "'");
    return RMSPROP_OPS_VALUE_ERROR;
  }
  const AttrSpec *a = find_attr(*op, attr ? attr : "");
  if (a == nullptr) {
    write_err(err, errlen, std::string("attr: op '") + op->name + "' has no attribute '" + (attr ? attr : "") + "'");
    return RMSPROP_OPS_VALUE_ERROR;
  }
  const std::string e = check_attr_value(*a, value);
  if (e.empty()) return RMSPROP_OPS_OK;
  write_err(err, errlen, e);
  return RMSPROP_OPS_VALUE_ERROR;
}

void rmsprop_ops_op_stats(rmsprop_ops_stats *out) {
  if (out == nullptr) return;
  for (int d = 0; d < 2; ++d) {
    out->device[d].calls = g_counters[d].calls.load(std::memory_order_relaxed);
    out->device[d].tensor_sets = g_counters[d].sets.load(std::memory_order_relaxed);
    out->device[d].elements = g_counters[d].elements.load(std::memory_order_relaxed);
  }
}

void rmsprop_ops_reset_op_stats(void) {
  for (DeviceCounters &c : g_counters) {
    c.calls.store(0, std::memory_order_relaxed);
    c.sets.store(0, std::memory_order_relaxed);
    c.elements.store(0, std::memory_order_relaxed);
  }
}

int rmsprop_ops_built_with_cuda(void) { return built_with_cuda() ? 1 : 0; }
int rmsprop_ops_cuda_available(void) { return cuda_available() ? 1 : 0; }
void rmsprop_ops_set_num_threads(int n) { set_num_threads(n > RMSPROP_OPS_MAX_THREADS ? RMSPROP_OPS_MAX_THREADS : n); }
int rmsprop_ops_get_num_threads(void) { return get_num_threads(); }

void rmsprop_ops_partition(int64_t total, int32_t nthreads, int32_t tid, int64_t align, int64_t *begin,
                           int64_t *end) {
  partition(total, nthreads, tid, align, begin, end);
}

int64_t rmsprop_ops_cuda_chunk(int64_t total, int64_t nsets, int32_t sm_count) {
  return cuda_call_chunk(total, nsets, sm_count);
}

void rmsprop_ops_cuda_launch_limits(int32_t *max_sets, int32_t *max_blocks) {
  if (max_sets != nullptr) *max_sets = kCudaMaxSets;
  if (max_blocks != nullptr) *max_blocks = kCudaMaxBlocks;
}

int64_t rmsprop_ops_cuda_launch_plan(const int64_t *numels, int64_t nsets, int32_t sm_count, int64_t *out,
                                     int64_t max_launches) {
  int64_t launches = 0, sets_in = 0, blocks_in = 0, first_set = 0, first_chunk = 0, last_set = 0, last_chunk = 0;
  int64_t total = 0;
  for (int64_t k = 0; k < nsets; ++k) total += numels[k];
  plan_launches(
      nsets, [&](int64_t k) { return numels[k]; }, cuda_call_chunk(total, nsets, sm_count), kCudaMaxSets, kCudaMaxBlocks,
      [&](int64_t k, int slot) {
        sets_in = slot + 1;
        last_set = k;
      },
      [&](int64_t chunk, int, int block) {
        if (block == 0) {
          first_set = last_set;
          first_chunk = chunk;
        }
        last_chunk = chunk;
        blocks_in = block + 1;
      },
      [&] {
        if (launches < max_launches && out != nullptr) {
          int64_t *o = out + 6 * launches;
          o[0] = sets_in;
          o[1] = blocks_in;
          o[2] = first_set;
          o[3] = first_chunk;
          o[4] = last_set;
          o[5] = last_chunk;
        }
        ++launches;
      });
  return launches;
}

}  // extern "C"
