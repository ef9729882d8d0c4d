// The C API: every exported function. A call is validated first (validate.cpp), then dispatched to a kernel.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "checks.h"
#include "kernels.h"
#include "registry.h"
#include "rmsprop_ops/dtypes.h"
#include "thread_pool.h"
#include "validate.h"

namespace rmsprop_ops {
namespace {

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
  return guarded(err, errlen, [&] {
    const Launch l = validate(sets, nsets, hp, flags);
    if ((flags & RMSPROP_OPS_FLAG_CHECK_ONLY) || nsets == 0) return;
    if (flags & RMSPROP_OPS_FLAG_BANDWIDTH_PROBE) {
      if (l.param_dtype != RMSPROP_OPS_FLOAT32 || sets[0].param.device != RMSPROP_OPS_CPU || l.master)
        fail(RMSPROP_OPS_VALUE_ERROR, "params: the bandwidth probe takes float32 CPU tensors without master weights");
      bandwidth_probe_cpu(sets, nsets);
      return;
    }
    if (sets[0].param.device == RMSPROP_OPS_CUDA)
      run_cuda(l, stream);
    else
      run_cpu(l);
    count_call(sets, nsets);
  });
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
