// Per-thread scratch vectors that keep their memory between calls, for the core and both framework shims.
// A step over thousands of tensors needs a few hundred KiB of descriptors, ranges and pointers; allocated
// and freed on every call, that memory went back to the system and was faulted in again, call after call.
// scratch() is only for code that does not call back into itself on the same thread (nothing that runs
// user code); the pybind11 binding, which does, keeps its own buffers and trims them with trim().
#pragma once

#include <cstddef>
#include <vector>

namespace rmsprop_ops {

// Above this, a vector is not kept at more than twice what the call needs: one call over a million
// tensors must not leave its hundreds of MiB to every later call on the thread.
constexpr size_t kScratchKeepBytes = size_t{16} << 20;

// Gives `v`'s memory back when it is large and more than twice what a call needing n elements uses.
template <class T>
void trim(std::vector<T> &v, size_t n) {
  if (v.capacity() * sizeof(T) > kScratchKeepBytes && v.capacity() > 2 * n) std::vector<T>().swap(v);
}

// The calling thread's vector for (T, Tag), resized to n (new elements value-initialised; the old ones
// keep whatever the last call left: callers overwrite what they read).
template <class T, int Tag>
std::vector<T> &scratch(size_t n) {
  thread_local std::vector<T> v;
  trim(v, n);
  v.resize(n);
  return v;
}

}  // namespace rmsprop_ops
