// Per-thread scratch vectors that keep their memory between calls. A step over thousands of tensors needs
// a few hundred KiB of descriptors, ranges and pointers; allocated and freed on every call, that memory
// went back to the system and was faulted in again, call after call. Only for code that does not call
// back into itself on the same thread (nothing here runs user code).
#pragma once

#include <cstddef>
#include <vector>

namespace rmsprop_ops {

// The calling thread's vector for (T, Tag), resized to n (new elements value-initialised; the old ones
// keep whatever the last call left: callers overwrite what they read).
template <class T, int Tag>
std::vector<T> &scratch(size_t n) {
  thread_local std::vector<T> v;
  v.resize(n);
  return v;
}

}  // namespace rmsprop_ops
