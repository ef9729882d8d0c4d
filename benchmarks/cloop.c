/* The reference a user would write by hand: a plain fused OpenMP loop of the same update, in C.
 *
 * Built at run time by _cloop.py with the machine's C compiler (-O3 -march=native -fno-math-errno
 * -fopenmp, nothing else): what this machine's compiler makes of the plain loop is the bar the core
 * kernel is measured against. It moves the same bytes as the core's update of the same buffers: grad
 * read; param and mean_square (and moment, mean_grad when present) read and written once.
 *
 * One buffer set: the element range is split statically over the threads (omp for schedule(static)).
 * Several sets: the sets are split statically over the threads, each set updated whole by one thread,
 * which is how one would write the loop over a list of tensors. */
#include <math.h>
#include <omp.h>
#include <stdint.h>

enum { KIND_PLAIN = 0, KIND_MOMENTUM = 1, KIND_CENTERED = 2 };

static void update_set(int kind, int64_t n, float *restrict p, const float *restrict g, float *restrict ms,
                       float *restrict mom, float *restrict mg, float lr, float rho, float eps, float mu) {
  const float omr = 1.0f - rho;
  if (kind == KIND_PLAIN) {
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i];
      const float m = rho * ms[i] + omr * gi * gi;
      ms[i] = m;
      p[i] -= lr * gi / sqrtf(m + eps);
    }
  } else if (kind == KIND_MOMENTUM) {
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i];
      const float m = rho * ms[i] + omr * gi * gi;
      ms[i] = m;
      const float v = mu * mom[i] + lr * gi / sqrtf(m + eps);
      mom[i] = v;
      p[i] -= v;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i];
      const float m = rho * ms[i] + omr * gi * gi;
      const float a = rho * mg[i] + omr * gi;
      ms[i] = m;
      mg[i] = a;
      const float var = m - a * a;
      const float v = mu * mom[i] + lr * gi / sqrtf((var < 0.0f ? 0.0f : var) + eps);
      mom[i] = v;
      p[i] -= v;
    }
  }
}

/* mom[k] / mg[k] are read only for the kinds that use them (NULL arrays otherwise). */
void cloop_update(int kind, int64_t nsets, const int64_t *numel, float *const *p, const float *const *g,
                  float *const *ms, float *const *mom, float *const *mg, float lr, float rho, float eps,
                  float mu, int nthreads) {
  if (nsets == 1) {
    const int64_t n = numel[0];
#pragma omp parallel num_threads(nthreads)
    {
      int64_t lo, hi;
      {
        /* 16-element (64-byte) boundaries: no two threads write one cache line. */
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int64_t units = (n + 15) / 16;
        lo = units * t / nt * 16;
        hi = units * (t + 1) / nt * 16;
        if (hi > n) hi = n;
        if (lo > n) lo = n;
      }
      if (lo < hi)
        update_set(kind, hi - lo, p[0] + lo, g[0] + lo, ms[0] + lo, mom ? mom[0] + lo : 0, mg ? mg[0] + lo : 0,
                   lr, rho, eps, mu);
    }
  } else {
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t k = 0; k < nsets; ++k)
      update_set(kind, numel[k], p[k], g[k], ms[k], mom ? mom[k] : 0, mg ? mg[k] : 0, lr, rho, eps, mu);
  }
}
