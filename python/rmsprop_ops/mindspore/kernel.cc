// MindSpore aot kernel of rmsprop_ops: unpacks the Custom op's arguments into tensor sets and calls the
// core's C ABI (rmsprop_ops_update). No arithmetic happens here; the rule lives in rmsprop_ops/rule.h.
//
// Built on first use by rmsprop_ops.mindspore._build with MindSpore's _GLIBCXX_USE_CXX11_ABI flag. Only
// C types cross into MindSpore (the documented aot signature) and into the core, so the flag is a
// formality here, respected anyway so that nothing std:: can ever mismatch.
//
// Argument layout of the op (inputs, then the one output):
//   0                 LearningRate   float32/float64 scalar, read by the core where it lives (no host sync)
//   1                 Config         float64, laid out by the core's registry (rmsprop_ops_config_field):
//                                    count, centered, flat_state, one value per registry attribute, n values
//                                    per per-tensor list, then with flat state n element offsets
//   2 .. 2+n          Param[n]       updated in place
//   ..                Grad[n]
//   ..                MeanSquare[n]  updated in place
//   ..                Moment[n]      updated in place
//   ..                MeanGrad[n]    only when centered, updated in place
//   last              Out            float32 (1,): 1 after a successful update
// With flat state each state list is one 1-D buffer instead of n tensors, tensor k's state starting at
// offset k (rmsprop_ops/flat.h): MindSpore's runtime pays for every op input on every launch.
// Every value is handed to the core's filler by its registry name and validated by the core before
// anything is written; on failure the core's status code is returned to MindSpore and its message is
// kept for rmsprop_ops_ms_last_error().
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "rmsprop_ops/c_api.h"
#include "rmsprop_ops/dtypes.h"
#include "rmsprop_ops/flat.h"
#include "rmsprop_ops/scratch.h"
#include "rmsprop_ops/format.h"

#ifdef RMSPROP_OPS_MS_CUDA
#include <cuda_runtime_api.h>
#endif

namespace {

enum HeaderField { kCount, kCentered, kFlatState };
static_assert(RMSPROP_OPS_CONFIG_HEADER == 3, "the header fields above");

// Entries of a section of the config layout (rmsprop_ops_config_field): read once from the core.
int64_t section_size(int32_t section) {
  int32_t i = 0;
  while (rmsprop_ops_config_field(section, i) != nullptr) ++i;
  return i;
}

std::mutex g_err_mutex;
char g_last_error[1024] = "";
std::atomic<int64_t> g_launches{0};
std::atomic<int64_t> g_tensors{0};

int fail(int code, const std::string &msg) {
  std::lock_guard<std::mutex> lock(g_err_mutex);
  std::snprintf(g_last_error, sizeof g_last_error, "%s", msg.c_str());
  std::fprintf(stderr, "rmsprop_ops (MindSpore kernel): %s\n", msg.c_str());
  return code;
}

int32_t dtype_code(const char *name) {
  if (name == nullptr) return RMSPROP_OPS_UNKNOWN;
  if (!std::strcmp(name, "float32") || !std::strcmp(name, "float")) return RMSPROP_OPS_FLOAT32;
  if (!std::strcmp(name, "float64") || !std::strcmp(name, "double")) return RMSPROP_OPS_FLOAT64;
  if (!std::strcmp(name, "float16")) return RMSPROP_OPS_FLOAT16;
  if (!std::strcmp(name, "bfloat16")) return RMSPROP_OPS_BFLOAT16;
  if (!std::strcmp(name, "bool")) return RMSPROP_OPS_BOOL;
  if (!std::strcmp(name, "int32") || !std::strcmp(name, "int")) return RMSPROP_OPS_INT32;
  if (!std::strcmp(name, "int64")) return RMSPROP_OPS_INT64;
  return RMSPROP_OPS_UNKNOWN;
}

constexpr int32_t kDevice =
#ifdef RMSPROP_OPS_MS_CUDA
    RMSPROP_OPS_CUDA;
#else
    RMSPROP_OPS_CPU;
#endif

// The config tensor lives where the op runs; on a GPU it is copied to the host (a few dozen bytes).
int read_config(const void *src, int64_t count, std::vector<double> &out, void *stream) {
  out.resize(static_cast<size_t>(count));
#ifdef RMSPROP_OPS_MS_CUDA
  auto s = static_cast<cudaStream_t>(stream);
  if (cudaMemcpyAsync(out.data(), src, sizeof(double) * count, cudaMemcpyDeviceToHost, s) != cudaSuccess ||
      cudaStreamSynchronize(s) != cudaSuccess)
    return fail(RMSPROP_OPS_RUNTIME_ERROR, "config: copying the hyper-parameters to the host failed");
#else
  (void)stream;
  std::memcpy(out.data(), src, sizeof(double) * count);
#endif
  return RMSPROP_OPS_OK;
}

rmsprop_ops_tensor describe(void *data, int ndim, const int64_t *shape, const char *dtype) {
  rmsprop_ops_tensor t{};
  t.data = data;
  t.ndim = ndim;
  // MindSpore passes no shape array for a 0-d tensor; the core would then compare element counts only
  // (a 0-d grad would pass for a (1,) param) and print "(1 elements)" instead of "()".
  static const int64_t kNoDims[1] = {0};
  t.shape = ndim == 0 ? kNoDims : shape;
  t.numel = 1;
  for (int d = 0; d < ndim; ++d) t.numel *= shape[d];
  t.dtype = dtype_code(dtype);
  t.writable = 1;
  t.device = kDevice;
  return t;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int rmsprop_ops_ms_update(int nparam, void **params, int *ndims,
                                                                  int64_t **shapes, const char **dtypes,
                                                                  void *stream, void *extra) {
  (void)extra;
  using rmsprop_ops::short_repr;
  static const int64_t n_values = section_size(RMSPROP_OPS_CONFIG_VALUES);
  static const int64_t n_lists = section_size(RMSPROP_OPS_CONFIG_LISTS);
  const int64_t header = RMSPROP_OPS_CONFIG_HEADER + n_values;
  if (nparam < 3) return fail(RMSPROP_OPS_VALUE_ERROR, "expected at least 3 arguments, got " + std::to_string(nparam));
  const int cfg_idx = 1;
  if (dtype_code(dtypes[cfg_idx]) != RMSPROP_OPS_FLOAT64 || ndims[cfg_idx] != 1 || shapes[cfg_idx][0] < header)
    return fail(RMSPROP_OPS_TYPE_ERROR, "config: expected a float64 vector of at least " + std::to_string(header) +
                                            " values, got dtype " + dtypes[cfg_idx]);
  std::vector<double> &cfg = rmsprop_ops::scratch<double, 0>(static_cast<size_t>(shapes[cfg_idx][0]));
  if (int rc = read_config(params[cfg_idx], shapes[cfg_idx][0], cfg, stream)) return rc;
  if (!(cfg[kCount] >= 0 && cfg[kCount] <= static_cast<double>(nparam)) ||
      cfg[kCount] != static_cast<double>(static_cast<int64_t>(cfg[kCount])))
    return fail(RMSPROP_OPS_VALUE_ERROR, "config: expected a tensor count in [0, " + std::to_string(nparam) +
                                             "], got " + short_repr(cfg[kCount]));
  const int64_t n = static_cast<int64_t>(cfg[kCount]);
  const bool centered = cfg[kCentered] != 0.0;
  const bool flat = cfg[kFlatState] != 0.0;
  const int64_t n_state = centered ? 3 : 2;
  const int64_t want_cfg = header + n_lists * n + (flat ? n : 0);
  if (static_cast<int64_t>(cfg.size()) != want_cfg)
    return fail(RMSPROP_OPS_VALUE_ERROR, "config: expected " + std::to_string(want_cfg) + " values for " +
                                             std::to_string(n) + " tensors" + (flat ? " with flat state" : "") +
                                             ", got " + std::to_string(cfg.size()));
  const int64_t want_args = 2 + 2 * n + (flat ? n_state : n_state * n) + 1;
  if (nparam != want_args)
    return fail(RMSPROP_OPS_VALUE_ERROR, "expected " + std::to_string(want_args) + " arguments for " +
                                             std::to_string(n) + " tensors" + (flat ? " with flat state" : "") +
                                             ", got " + std::to_string(nparam));
  int64_t lr_numel = 1;
  for (int d = 0; d < ndims[0]; ++d) lr_numel *= shapes[0][d];
  if (lr_numel != 1)
    return fail(RMSPROP_OPS_VALUE_ERROR, "lr: expected a scalar tensor, got " + std::to_string(lr_numel) +
                                             " elements");

  // A flat state buffer must be 1-D; rmsprop_ops::flat_slice checks that each slice fits. Dtypes and
  // overlaps of slices are the core's checks, as for separate tensors.
  const char *const kStateNames[3] = {"mean_squares", "moments", "mean_grads"};
  const int64_t state0 = 2 + 2 * n;
  rmsprop_ops_tensor buffers[3] = {};
  if (flat) {
    for (int64_t b = 0; b < n_state; ++b) {
      const int64_t i = state0 + b;
      if (ndims[i] != 1)
        return fail(RMSPROP_OPS_VALUE_ERROR, std::string(kStateNames[b]) + ": expected a 1-D flat buffer, got " +
                                                 std::to_string(ndims[i]) + " dims");
      buffers[b] = describe(params[i], ndims[i], shapes[i], dtypes[i]);
    }
  }
  std::vector<rmsprop_ops_tensor_set> &sets = rmsprop_ops::scratch<rmsprop_ops_tensor_set, 0>(static_cast<size_t>(n));
  auto arg = [&](int64_t block, int64_t k) {
    const int64_t i = 2 + block * n + k;
    return describe(params[i], ndims[i], shapes[i], dtypes[i]);
  };
  const double *offsets = cfg.data() + header + n_lists * n;
  for (int64_t k = 0; k < n; ++k) {
    rmsprop_ops_tensor_set &s = sets[k];
    rmsprop_ops_default_tensor_set(&s);
    s.param = arg(0, k);
    s.grad = arg(1, k);
    s.grad.writable = 0;
    rmsprop_ops_tensor *state[3] = {&s.mean_square, &s.moment, &s.mean_grad};
    for (int64_t b = 0; b < n_state; ++b) {
      if (!flat) {
        *state[b] = arg(2 + b, k);
        continue;
      }
      if (rmsprop_ops::flat_slice_fits(buffers[b], offsets[k], s.param)) {
        *state[b] = rmsprop_ops::flat_slice_unchecked(buffers[b], offsets[k], s.param);
        continue;
      }
      const std::string idx = "[" + std::to_string(k) + "]";  // names are made only for the message
      return fail(RMSPROP_OPS_VALUE_ERROR, rmsprop_ops::flat_slice(buffers[b], kStateNames[b], offsets[k],
                                                                   "config: offset" + idx, s.param, "params" + idx,
                                                                   state[b]));
    }
  }

  // Every attribute and list by its registry name, through the core's filler.
  rmsprop_ops_hparams hp;
  rmsprop_ops_default_hparams(&hp);
  hp.centered = centered ? 1 : 0;
  char err[1024];
  for (int32_t i = 0; i < n_values; ++i) {
    const int rc = rmsprop_ops_set_attr(&hp, sets.data(), n, rmsprop_ops_config_field(RMSPROP_OPS_CONFIG_VALUES, i),
                                        cfg[RMSPROP_OPS_CONFIG_HEADER + i], err, sizeof err);
    if (rc != RMSPROP_OPS_OK) return fail(rc, err);
  }
  for (int32_t j = 0; j < n_lists; ++j) {
    const int rc = rmsprop_ops_set_attr_list(sets.data(), n, rmsprop_ops_config_field(RMSPROP_OPS_CONFIG_LISTS, j),
                                             cfg.data() + header + j * n, n, err, sizeof err);
    if (rc != RMSPROP_OPS_OK) return fail(rc, err);
  }
  // On the CPU the core range-checks the lr tensor's value like a number (it is host memory); on a GPU
  // the kernel alone reads it, as a check would need a sync.
  if (int rc = rmsprop_ops_set_scalar(&hp, "LearningRate", params[0], dtype_code(dtypes[0]), err, sizeof err))
    return fail(rc, err);

  const int rc = rmsprop_ops_update(sets.data(), n, &hp, stream, RMSPROP_OPS_FLAG_LIST_NAMES, err, sizeof err);
  if (rc != RMSPROP_OPS_OK) return fail(rc, err);

  void *out = params[nparam - 1];
  const float one = 1.0f;
#ifdef RMSPROP_OPS_MS_CUDA
  cudaMemcpyAsync(out, &one, sizeof one, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream));
#else
  std::memcpy(out, &one, sizeof one);
#endif
  g_launches.fetch_add(1, std::memory_order_relaxed);
  g_tensors.fetch_add(n, std::memory_order_relaxed);
  return RMSPROP_OPS_OK;
}

// The message of the last failed launch ("" when none), copied into buf (always NUL-terminated).
__attribute__((visibility("default"))) void rmsprop_ops_ms_last_error(char *buf, size_t len) {
  if (buf == nullptr || len == 0) return;
  std::lock_guard<std::mutex> lock(g_err_mutex);
  std::snprintf(buf, len, "%s", g_last_error);
}

__attribute__((visibility("default"))) void rmsprop_ops_ms_clear_error(void) {
  std::lock_guard<std::mutex> lock(g_err_mutex);
  g_last_error[0] = '\0';
}

// How many launches succeeded and how many tensors they updated: lets tests prove our kernel ran.
__attribute__((visibility("default"))) int64_t rmsprop_ops_ms_launches(void) { return g_launches.load(); }
__attribute__((visibility("default"))) int64_t rmsprop_ops_ms_tensors_updated(void) { return g_tensors.load(); }

}  // extern "C"
