/* rmsprop-ops: the flat-state layout, defined once for every front end.
 *
 * "Flat state" keeps one kind of optimizer state (mean squares, moments, mean gradients) for many tensors
 * in one 1-D buffer: tensor k's slice starts at offsets[k] elements and holds as many elements as its
 * param. The default packing puts the tensors in order, each start rounded up to a multiple of
 * RMSPROP_OPS_FLAT_ALIGN elements (64 bytes of float32: every slice starts on a cache line, and the CUDA
 * kernel's 16-byte packs stay aligned within it). The registry exports the alignment in its JSON
 * ("flat_state"), which the Python layout (rmsprop_ops._toolkit.flat) reads; the Paddle kernel packs
 * with rmsprop_ops_flat_offsets below, and both shims cut slices with rmsprop_ops::flat_slice.
 */
#ifndef RMSPROP_OPS_FLAT_H_
#define RMSPROP_OPS_FLAT_H_

#include <stdint.h>

#include "rmsprop_ops/c_api.h"

#define RMSPROP_OPS_FLAT_ALIGN 16

/* Offsets of n tensors of sizes[k] elements packed in order, each start a multiple of align elements.
 * Writes offsets[0..n) and returns the buffer's total size, or -1 for a negative size or an overflow. */
static inline int64_t rmsprop_ops_flat_offsets(const int64_t *sizes, int64_t n, int64_t align, int64_t *offsets) {
  int64_t end = 0;
  if (align < 1) align = 1;
  for (int64_t k = 0; k < n; ++k) {
    if (sizes[k] < 0 || end > INT64_MAX - (align - 1)) return -1;
    const int64_t start = (end + align - 1) / align * align;
    if (start > INT64_MAX - sizes[k]) return -1;
    offsets[k] = start;
    end = start + sizes[k];
  }
  return end;
}

#ifdef __cplusplus
#include <cmath>
#include <string>

#include "rmsprop_ops/dtypes.h"
#include "rmsprop_ops/format.h"

namespace rmsprop_ops {

/* Whether `param`'s elements fit in the 1-D flat buffer `buffer` from element `offset` (a double: the
 * MindSpore config carries float64; an int64 offset converts exactly below 2^53, and one beyond can never
 * fit). Compared as a double before any cast, so that no offset can overflow past the check. */
inline bool flat_slice_fits(const rmsprop_ops_tensor &buffer, double offset, const rmsprop_ops_tensor &param) {
  const int64_t size = buffer.numel, numel = param.numel;
  return size >= numel && offset >= 0 && std::floor(offset) == offset && offset <= static_cast<double>(size - numel);
}

/* The slice itself, shaped like `param`, for a slice flat_slice_fits accepted: a caller slicing thousands
 * of tensors per step checks with flat_slice_fits and builds names only for flat_slice's message. */
inline rmsprop_ops_tensor flat_slice_unchecked(const rmsprop_ops_tensor &buffer, double offset,
                                               const rmsprop_ops_tensor &param) {
  rmsprop_ops_tensor out = buffer;
  const int64_t isz = dtype_size(buffer.dtype);
  if (buffer.numel != 0 && isz > 0) out.data = static_cast<char *>(buffer.data) + static_cast<int64_t>(offset) * isz;
  out.numel = param.numel;
  out.shape = param.shape;
  out.ndim = param.ndim;
  return out;
}

/* Tensor `param`'s slice of `buffer` at element `offset`: returns "" and fills *out, or the error message,
 * which names the buffer, the offset and the param as given. Whether slices overlap, and the dtypes, are
 * the core's checks, as for separate tensors. */
inline std::string flat_slice(const rmsprop_ops_tensor &buffer, const std::string &buffer_name, double offset,
                              const std::string &offset_name, const rmsprop_ops_tensor &param,
                              const std::string &param_name, rmsprop_ops_tensor *out) {
  const int64_t size = buffer.numel, numel = param.numel;
  if (size < numel)
    return buffer_name + ": expected a flat buffer of at least " + std::to_string(numel) + " elements for " +
           param_name + ", got " + std::to_string(size);
  if (!flat_slice_fits(buffer, offset, param))
    return offset_name + ": expected an integer in [0, " + std::to_string(size - numel) + "] so that " + param_name +
           "'s " + std::to_string(numel) + " elements fit in " + buffer_name + " (" + std::to_string(size) +
           " elements), got " + short_repr(offset);
  *out = flat_slice_unchecked(buffer, offset, param);
  return "";
}

}  // namespace rmsprop_ops
#endif

#endif /* RMSPROP_OPS_FLAT_H_ */
