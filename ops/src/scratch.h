// Per-thread scratch vectors that keep their memory between calls. A step over thousands of tensors needs
// a few hundred KiB of descriptors, ranges and pointers; allocated and freed on every call, that memory
// went back to the system and was faulted in again, call after call. Only for code that does not call
// back into itself on the same thread (nothing here runs user code).
#pragma once

#include <cstddef>
#include <vector>

namespace rmsprop_ops {

// Above this, a vector is not kept at more than twice what the call needs: one call over a million
// tensors must not leave its hundreds of MiB to every later call on the thread.
constexpr size_t kScratchKeepBytes = size_t{16} << 20;

// `v` resized to n, its memory given back first when it is large and more than twice what n needs.
template <class T>
void fit(std::vector<T> &v, size_t n) {
  if (v.capacity() * sizeof(T) > kScratchKeepBytes && v.capacity() > 2 * n) std::vector<T>().swap(v);
  v.resize(n);
}

// The calling thread's vector for (T, Tag), resized to n (new elements value-initialised; the old ones
// keep whatever the last call left: callers overwrite what they read).
template <class T, int Tag>
std::vector<T> &scratch(size_t n) {
  thread_local std::vector<T> v;
  fit(v, n);
  return v;
}

}  // namespace rmsprop_ops
