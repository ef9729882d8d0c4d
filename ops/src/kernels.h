// Internal interface between the validating C API (api.cpp) and the kernels. Everything reaching these
// functions has been validated: pointers are non-overlapping, dtypes agree, optional buffers are present
// in every set or in none.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "rmsprop_ops/c_api.h"

namespace rmsprop_ops {

struct Launch {
  const rmsprop_ops_tensor_set *sets;
  int64_t nsets;
  const rmsprop_ops_hparams *hp;
  int32_t param_dtype;
  bool centered;
  bool momentum;  // moment buffers present
  bool master;    // master weights present
};

void run_cpu(const Launch &l);
void bandwidth_probe_cpu(const rmsprop_ops_tensor_set *sets, int64_t nsets);
// The name of the instruction set whose loops the CPU kernel runs in this process ("avx512", "avx2",
// "sse2", "generic" or "scalar"). Exported, with rmsprop_ops_cpu_compiler(), for the tests and the
// benchmarks (through ctypes; not part of c_api.h).
const char *cpu_isa();
// The CPU loops' software prefetch distance in bytes (0: none; the default depends on the CPU), settable
// for benchmarks that time both; results do not depend on it. Exported as rmsprop_ops_cpu_prefetch / rmsprop_ops_cpu_set_prefetch.
int64_t cpu_prefetch();
void set_cpu_prefetch(int64_t bytes);

// Throws std::runtime_error on a CUDA error; defined as a stub raising "built without CUDA" when the
// library has no CUDA objects.
void run_cuda(const Launch &l, void *stream);
bool cuda_available();
bool built_with_cuda();

// The static partition of [0, total) over nthreads, boundaries on multiples of align (the last range
// takes the remainder). Pure integer arithmetic in int64, shared with the tests through the C API.
inline void partition(int64_t total, int32_t nthreads, int32_t tid, int64_t align, int64_t *begin,
                      int64_t *end) {
  if (nthreads < 1) nthreads = 1;
  if (align < 1) align = 1;
  const int64_t units = (total + align - 1) / align;
  const int64_t per = units / nthreads;
  const int64_t extra = units % nthreads;
  // The first `extra` threads take one unit more; all boundaries are unit multiples, so no thread's
  // range depends on anything but (total, nthreads, tid, align).
  const int64_t lo_units = tid * per + (tid < extra ? tid : extra);
  const int64_t hi_units = lo_units + per + (tid < extra ? 1 : 0);
  int64_t lo = lo_units * align, hi = hi_units * align;
  if (lo > total) lo = total;
  if (hi > total) hi = total;
  *begin = lo;
  *end = hi;
}

// Shape of the CUDA kernel's launches. Kept here, not in the .cu file, so the launch plan below can be
// tested (C API: rmsprop_ops_cuda_launch_plan) in builds and on machines without CUDA.
constexpr int64_t kCudaChunk = 1 << 16;    // most elements per block
constexpr int64_t kCudaMinChunk = 2048;     // one pass of a 512-thread block over 4-element packs
constexpr int kCudaBlocksPerSm = 4;         // 512-thread blocks an SM holds at 2048 resident threads
// Sets and blocks per launch. The batch travels in the kernel's parameters, which may take 32764 bytes
// from CUDA 12.1 on for Volta and newer, 4096 otherwise. With 20 sets per launch, 1000 small tensors took
// 50 launches of 20 blocks each, far from filling a large GPU (docs/performance.md, GPU).
// CMake defines RMSPROP_OPS_CUDA_LARGE_PARAMS for the whole core (this plan and the kernel must agree)
// when nvcc and every target architecture allow it.
#ifdef RMSPROP_OPS_CUDA_LARGE_PARAMS
constexpr int kCudaMaxSets = 256;
constexpr int kCudaMaxBlocks = 1024;
constexpr int kCudaParamBytes = 32764;
#else
constexpr int kCudaMaxSets = 20;
constexpr int kCudaMaxBlocks = 256;
constexpr int kCudaParamBytes = 4096;
#endif

// Elements per block for a call updating `total` elements on a device with `sm_count` multiprocessors
// (0: unknown). Large chunks amortise each block's setup; but a fixed 64K chunk would give a 1M-element
// tensor 16 blocks and leave most of a 100+ SM device idle. So: the largest chunk that still gives every
// SM kCudaBlocksPerSm blocks, a multiple of kCudaMinChunk (whole packs, no pack straddles two chunks),
// within [kCudaMinChunk, kCudaChunk].
inline int64_t cuda_chunk_for(int64_t total, int sm_count) {
  if (sm_count <= 0) return kCudaChunk;
  const int64_t want_blocks = static_cast<int64_t>(sm_count) * kCudaBlocksPerSm;
  // Rounded down, so that total / chunk >= want_blocks.
  const int64_t chunk = total / want_blocks / kCudaMinChunk * kCudaMinChunk;
  return chunk < kCudaMinChunk ? kCudaMinChunk : (chunk > kCudaChunk ? kCudaChunk : chunk);
}

// Elements per block for a call of `nsets` sets totalling `total` elements. A call of more than
// kCudaMaxSets sets takes several launches, run one after the other, so each launch, not the call, must
// fill the device: about total / nsets * kCudaMaxSets elements each.
inline int64_t cuda_call_chunk(int64_t total, int64_t nsets, int sm_count) {
  const int64_t per_launch = nsets > kCudaMaxSets ? total / nsets * kCudaMaxSets : total;
  return cuda_chunk_for(per_launch, sm_count);
}

// The CUDA launch plan, host arithmetic only: every (set, chunk) pair of a call, in order, packed into
// launches of at most max_sets sets and max_blocks blocks; a set cut by a full launch is registered
// again in the next. on_set(k, slot) registers set k in the launch's slot; on_block(chunk, slot, block)
// fills a block; flush() ends a launch (never called for an empty one).
template <typename NumelOf, typename OnSet, typename OnBlock, typename Flush>
void plan_launches(int64_t nsets, NumelOf numel_of, int64_t chunk, int max_sets, int max_blocks, OnSet on_set,
                   OnBlock on_block, Flush flush) {
  int sets_in = 0, blocks_in = 0;
  auto end_launch = [&] {
    if (blocks_in > 0) flush();
    sets_in = 0;
    blocks_in = 0;
  };
  for (int64_t k = 0; k < nsets; ++k) {
    const int64_t n = numel_of(k);
    const int64_t chunks = (n + chunk - 1) / chunk;
    for (int64_t ch = 0; ch < chunks; ++ch) {
      if (ch == 0 || sets_in == 0) {
        if (sets_in == max_sets) end_launch();
        on_set(k, sets_in);
        ++sets_in;
      }
      on_block(ch, sets_in - 1, blocks_in);
      ++blocks_in;
      if (blocks_in == max_blocks) end_launch();
    }
  }
  end_launch();
}

}  // namespace rmsprop_ops
