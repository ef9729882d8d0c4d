// Validation of a whole call before anything is touched (rmsprop_ops_update): every descriptor's structure,
// dtypes, shapes, devices, writability, alignment, the presence of optional buffers across the call, every
// hyper-parameter against the registry, and memory overlap by real address ranges.
#include "validate.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "checks.h"
#include "registry.h"
#include "rmsprop_ops/dtypes.h"
#include "rmsprop_ops/format.h"
#include "rmsprop_ops/scratch.h"

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

struct Range {
  uintptr_t lo, hi;
  bool written;
  int role;
  int64_t set;
};

// The indices of `ranges` by start address, ties in the order they were pushed (which is call order: set,
// then role). A stable LSD radix sort on the address bytes that differ between ranges: every call over
// thousands of tensors is validated, and a comparison sort of their ranges cost more than reading them.
const std::vector<uint32_t> &start_order(const std::vector<Range> &ranges) {
  const size_t n = ranges.size();
  std::vector<uint32_t> &idx = scratch<uint32_t, 0>(n);
  for (size_t i = 0; i < n; ++i) idx[i] = static_cast<uint32_t>(i);
  if (n < 64) {
    std::stable_sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) { return ranges[a].lo < ranges[b].lo; });
    return idx;
  }
  std::vector<uint64_t> &key = scratch<uint64_t, 0>(n), &key2 = scratch<uint64_t, 1>(n);
  std::vector<uint32_t> &idx2 = scratch<uint32_t, 1>(n);
  uint64_t differ = 0;
  for (size_t i = 0; i < n; ++i) {
    key[i] = ranges[i].lo;
    differ |= key[i] ^ key[0];
  }
  for (int shift = 0; shift < 64 && (differ >> shift) != 0; shift += 8) {
    if (((differ >> shift) & 0xff) == 0) continue;  // every key has the same byte here
    size_t count[257] = {};
    for (size_t i = 0; i < n; ++i) ++count[((key[i] >> shift) & 0xff) + 1];
    for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
    for (size_t i = 0; i < n; ++i) {
      const size_t to = count[(key[i] >> shift) & 0xff]++;
      key2[to] = key[i];
      idx2[to] = idx[i];
    }
    key.swap(key2);
    idx.swap(idx2);
  }
  return idx;
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

}  // namespace

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
  // Sized for every buffer up front and filled field by field through a plain pointer: pushing a Range
  // built on the stack stalled on store forwarding, once per buffer.
  std::vector<Range> &ranges = scratch<Range, 0>(static_cast<size_t>(nsets) * kNumRoles + scalar_inputs().size());
  Range *const out = ranges.data();
  size_t used = 0;
  auto push = [&](uintptr_t lo, uintptr_t hi, bool written, int role, int64_t set) {
    Range &r = out[used++];
    r.lo = lo;
    r.hi = hi;
    r.written = written;
    r.role = role;
    r.set = set;
  };
  // The scalars go in after set 0's tensors: pushed in (set, role) order, as the overlap sweep's ties are.
  auto push_scalars = [&] {
    for (size_t i = 0; i < scalar_inputs().size(); ++i) {
      const auto &sc = *reinterpret_cast<const rmsprop_ops_scalar *>(reinterpret_cast<const char *>(hp) +
                                                                       scalar_inputs()[i].offset);
      if (sc.ptr == nullptr) continue;
      const auto lo = reinterpret_cast<uintptr_t>(sc.ptr);
      push(lo, lo + static_cast<uintptr_t>(dtype_size(sc.dtype)), false, kNumRoles + static_cast<int>(i), 0);
    }
  };

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
      const int64_t isz = dtype_size(t.dtype);  // a power of two: every dtype here is 2, 4 or 8 bytes
      if ((lo & static_cast<uintptr_t>(isz - 1)) != 0)
        fail(RMSPROP_OPS_VALUE_ERROR, name(role, k) + ": expected memory aligned to " + std::to_string(isz) +
                                          " bytes for " + dtype_name(t.dtype) + ", got address % " +
                                          std::to_string(isz) + " = " + std::to_string(lo % isz));
      if (t.numel > 0) push(lo, end_address(lo, t.numel, isz), written, role, k);
    }
    if (k == 0) push_scalars();
  }
  if (device == RMSPROP_OPS_CUDA && !built_with_cuda())
    fail(RMSPROP_OPS_NOT_IMPLEMENTED, name(kParam, 0) + ": got a CUDA tensor, but rmsprop_ops was built "
                                                        "without CUDA");

  // Memory overlap: sweep the ranges by start address; a range overlaps an earlier one iff it starts
  // before the largest end seen so far. Only overlaps involving a written buffer are errors.
  // Ties broken by call order, so that the message names the later argument.
  ranges.resize(used);
  if (ranges.size() > UINT32_MAX) fail(RMSPROP_OPS_VALUE_ERROR, "sets: expected fewer than 2^32 buffers in one call");
  const Range *far_any = nullptr, *far_written = nullptr;
  for (const uint32_t i : start_order(ranges)) {
    const Range &r = ranges[i];
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

}  // namespace rmsprop_ops
