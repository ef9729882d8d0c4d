// What every validating entry of the C ABI shares (api.cpp, validate.cpp, rows_api.cpp): raising a named
// argument error, describing a descriptor in messages, the structural checks a descriptor must pass before
// its numbers are trusted, and turning whatever an entry throws into a status and a message.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "registry.h"
#include "rmsprop_ops/c_api.h"
#include "rmsprop_ops/dtypes.h"

namespace rmsprop_ops {

[[noreturn]] inline void fail(int code, const std::string &msg) { throw ArgError{code, msg}; }

inline std::string shape_str(const rmsprop_ops_tensor &t) {
  if (t.shape == nullptr) return "(" + std::to_string(t.numel) + " elements)";
  std::string s = "(";
  for (int32_t d = 0; d < t.ndim; ++d) s += (d ? ", " : "") + std::to_string(t.shape[d]);
  return s + (t.ndim == 1 ? ",)" : ")");
}

inline bool same_shape(const rmsprop_ops_tensor &a, const rmsprop_ops_tensor &b) {
  if (a.numel != b.numel) return false;
  if (a.shape == nullptr || b.shape == nullptr) return true;
  if (a.ndim != b.ndim) return false;
  for (int32_t d = 0; d < a.ndim; ++d)
    if (a.shape[d] != b.shape[d]) return false;
  return true;
}

// The first byte past a buffer of numel elements of isz bytes at addr, or 0 when that does not fit the
// address space (a lying descriptor: the overlap check must not wrap around).
inline uintptr_t end_address(uintptr_t addr, int64_t numel, int64_t isz) {
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

inline void write_err(char *err, size_t errlen, const std::string &msg) {
  if (err == nullptr || errlen == 0) return;
  const size_t n = std::min(errlen - 1, msg.size());
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

// Runs fn, turning what it throws into a status and a message: nothing crosses the C ABI but those. The
// kernels' "no kernel for this case" (std::invalid_argument) is NOT_IMPLEMENTED.
template <typename Fn>
int guarded(char *err, size_t errlen, const Fn &fn) {
  write_err(err, errlen, "");
  try {
    fn();
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

}  // namespace rmsprop_ops
