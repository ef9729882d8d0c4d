// The CUDA kernel: the rule of rule.h over lists of tensor sets, launched in the manner of apex's
// multi_tensor_apply: the host packs (set, chunk) pairs for up to kMaxBlocks blocks and kMaxSets sets
// into the kernel's argument struct, one launch per batch. The learning rate, the gradient rescale and
// the skip flag may be device scalars and are read by the kernel, so nothing synchronises with the host.
// The chunk (elements per block) is chosen per call from the device's SM count (cuda_call_chunk in
// kernels.h), so a small call, or each launch of a call of many small tensors, spreads over every SM.
//
// The build passes --fmad=false (and the CPU build -ffp-contract=off), so both kernels round every
// operation of the rule the same way: same inputs, same bits.
#include <cuda_runtime.h>

#include <atomic>
#include <string>

#include "cuda_device.h"
#include "kernels.h"
#include "rmsprop_ops/rule.h"

namespace rmsprop_ops {
namespace {

constexpr int kBlockThreads = 512;
constexpr int kILP = 4;  // elements per thread per iteration (16-byte fp32 accesses)
constexpr int kMaxSets = kCudaMaxSets;
constexpr int kMaxBlocks = kCudaMaxBlocks;

template <typename P>
struct Batch {
  SetPtrs<P> ptrs[kMaxSets];
  int64_t numel[kMaxSets];
  double lr_mult[kMaxSets];
  double weight_decay[kMaxSets];
  int32_t weight_decay_mode[kMaxSets];
  int16_t block_set[kMaxBlocks];
  int32_t block_chunk[kMaxBlocks];
};

// The batch, the hyper-parameters and the chunk are the kernel's parameters.
static_assert(sizeof(Batch<double>) + sizeof(rmsprop_ops_hparams) + sizeof(int64_t) <= kCudaParamBytes,
              "the launch batch must fit the kernel parameter space");

template <typename T>
__device__ __forceinline__ bool aligned_for(const T *p) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % (sizeof(T) * kILP) == 0;
}

template <typename T>
struct alignas(sizeof(T) * kILP) Pack {
  T v[kILP];
};

template <typename T>
__device__ __forceinline__ void load_pack(T *dst, const T *src, int64_t i) {
  *reinterpret_cast<Pack<T> *>(dst) = *reinterpret_cast<const Pack<T> *>(src + i);
}
template <typename T>
__device__ __forceinline__ void store_pack(T *dst, int64_t i, const T *src) {
  *reinterpret_cast<Pack<T> *>(dst + i) = *reinterpret_cast<const Pack<T> *>(src);
}

template <typename P, bool CENTERED, bool MOMENTUM, bool MASTER>
__global__ void __launch_bounds__(kBlockThreads)
    multi_kernel(const Batch<P> batch, const rmsprop_ops_hparams hp, const int64_t chunk) {
  using M = math_t<P>;
  if (load_scalar(hp.skip_update) != 0.0) return;
  const int s = batch.block_set[blockIdx.x];
  const int64_t n = batch.numel[s];
  const int64_t begin = static_cast<int64_t>(batch.block_chunk[blockIdx.x]) * chunk;
  const int64_t end = begin + chunk < n ? begin + chunk : n;
  const double lr = load_scalar(hp.lr) * batch.lr_mult[s];
  const Coeffs<M> c = make_coeffs<M>(hp, lr, load_scalar(hp.rescale_grad), batch.weight_decay[s],
                                     batch.weight_decay_mode[s]);
  const SetPtrs<P> g = batch.ptrs[s];

  const bool vec = aligned_for(g.param) && aligned_for(g.grad) && aligned_for(g.ms) &&
                   aligned_for(g.mom) && aligned_for(g.mg) && aligned_for(g.master);
  int64_t i = begin + static_cast<int64_t>(threadIdx.x) * kILP;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * kILP;
  if (vec) {
    // Whole packs: load every buffer into registers, run the same rmsprop_apply on the register copies
    // (a SetPtrs over local arrays), store the packs back.
    for (; i + kILP <= end; i += stride) {
      P p_r[kILP], g_r[kILP];
      M ms_r[kILP], mom_r[kILP], mg_r[kILP], master_r[kILP];
      if (MASTER) load_pack(master_r, g.master, i); else load_pack(p_r, g.param, i);
      load_pack(ms_r, g.ms, i);
      load_pack(g_r, g.grad, i);
      if (MOMENTUM) load_pack(mom_r, g.mom, i);
      if (CENTERED) load_pack(mg_r, g.mg, i);
      const SetPtrs<P> r{p_r, g_r, ms_r, mom_r, mg_r, master_r};
#pragma unroll
      for (int j = 0; j < kILP; ++j) rmsprop_apply<CENTERED, MOMENTUM, MASTER, P>(r, j, c);
      store_pack(g.param, i, p_r);
      store_pack(g.ms, i, ms_r);
      if (MOMENTUM) store_pack(g.mom, i, mom_r);
      if (CENTERED) store_pack(g.mg, i, mg_r);
      if (MASTER) store_pack(g.master, i, master_r);
    }
    // The chunk's tail, shorter than a pack, belongs to the one thread whose next pack straddles `end`.
    for (int64_t k = i; k < end; ++k) rmsprop_apply<CENTERED, MOMENTUM, MASTER, P>(g, k, c);
    return;
  }
  for (int64_t k = begin + threadIdx.x; k < end; k += blockDim.x)
    rmsprop_apply<CENTERED, MOMENTUM, MASTER, P>(g, k, c);
}

void check(cudaError_t e, const char *what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("rmsprop_ops CUDA error in ") + what + ": " +
                                                 cudaGetErrorString(e));
}

template <typename P, bool CENTERED, bool MOMENTUM, bool MASTER>
void launch_all(const Launch &l, cudaStream_t stream, int64_t chunk) {
  using M = math_t<P>;
  Batch<P> b;
  int nblocks = 0;
  plan_launches(
      l.nsets, [&](int64_t k) { return l.sets[k].param.numel; }, chunk, kMaxSets, kMaxBlocks,
      [&](int64_t k, int slot) {
        const rmsprop_ops_tensor_set &s = l.sets[k];
        b.ptrs[slot] = SetPtrs<P>{static_cast<P *>(s.param.data), static_cast<const P *>(s.grad.data),
                                  static_cast<M *>(s.mean_square.data), static_cast<M *>(s.moment.data),
                                  static_cast<M *>(s.mean_grad.data), static_cast<M *>(s.master_param.data)};
        b.numel[slot] = s.param.numel;
        b.lr_mult[slot] = s.lr_mult;
        b.weight_decay[slot] = s.weight_decay;
        b.weight_decay_mode[slot] = s.weight_decay_mode;
      },
      [&](int64_t chunk, int slot, int block) {
        b.block_set[block] = static_cast<int16_t>(slot);
        b.block_chunk[block] = static_cast<int32_t>(chunk);
        nblocks = block + 1;
      },
      [&] {
        multi_kernel<P, CENTERED, MOMENTUM, MASTER><<<nblocks, kBlockThreads, 0, stream>>>(b, *l.hp, chunk);
        check(cudaGetLastError(), "kernel launch");
      });
}

template <typename P>
void launch_flags(const Launch &l, cudaStream_t stream, int64_t chunk) {
  constexpr bool kMasterPossible = sizeof(P) == 2;
  const int key = (l.centered ? 4 : 0) | (l.momentum ? 2 : 0) | (l.master && kMasterPossible ? 1 : 0);
  switch (key) {
    case 0: launch_all<P, false, false, false>(l, stream, chunk); break;
    case 1: launch_all<P, false, false, kMasterPossible>(l, stream, chunk); break;
    case 2: launch_all<P, false, true, false>(l, stream, chunk); break;
    case 3: launch_all<P, false, true, kMasterPossible>(l, stream, chunk); break;
    case 4: launch_all<P, true, false, false>(l, stream, chunk); break;
    case 5: launch_all<P, true, false, kMasterPossible>(l, stream, chunk); break;
    case 6: launch_all<P, true, true, false>(l, stream, chunk); break;
    default: launch_all<P, true, true, kMasterPossible>(l, stream, chunk); break;
  }
}

[[noreturn]] void throw_not_implemented(const std::string &msg) { throw std::invalid_argument(msg); }

// Multiprocessors of the current device, asked once per device (an attribute query, no synchronisation).
int sm_count() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0) {
    cudaGetLastError();
    return 0;
  }
  if (dev >= kMaxDevices) dev = kMaxDevices - 1;
  int n = cache[dev].load(std::memory_order_relaxed);
  if (n == 0) {
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    cache[dev].store(n, std::memory_order_relaxed);
  }
  return n;
}

}  // namespace

void run_cuda(const Launch &l, void *stream) {
  if (l.nsets == 0) return;
  DeviceGuard guard(l.sets[0].param.data);
  int64_t total = 0;
  for (int64_t k = 0; k < l.nsets; ++k) total += l.sets[k].param.numel;
  const int64_t chunk = cuda_call_chunk(total, l.nsets, sm_count());
  RMSPROP_OPS_DISPATCH_PARAM_DTYPE(l.param_dtype, P, throw_not_implemented,
                                   launch_flags<P>(l, static_cast<cudaStream_t>(stream), chunk));
}

bool cuda_available() {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();  // a machine without a driver leaves a sticky "no driver" error behind
  return ok;
}

bool built_with_cuda() { return true; }

}  // namespace rmsprop_ops
