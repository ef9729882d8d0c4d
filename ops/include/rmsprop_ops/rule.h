// The RMSProp update rule: the only place its arithmetic is written. The CPU loop (cpu_kernel.cpp) and
// the CUDA kernel (cuda_kernel.cu) both call rmsprop_element() per element.
//
// Options that only change arithmetic are folded into coefficients (Coeffs) so the loop body is
// straight-line code the compiler vectorises; a disabled option becomes an exact identity (x * 1, clip at
// +inf, a skipped decay term). Options that change which buffers are read or written (centered,
// momentum, a master weight) are template parameters.
#pragma once

#include <cmath>

#include "rmsprop_ops/dtypes.h"

namespace rmsprop_ops {

template <typename M>
struct Coeffs {
  M lr;          // p -= lr * g / d without momentum
  M rho;
  M one_minus_rho;
  M momentum;
  M mom_scale;   // lr when lr_in_momentum, else 1
  M step_scale;  // 1 when lr_in_momentum, else lr
  M eps_in;      // epsilon inside the sqrt, or 0
  M eps_out;     // epsilon outside the sqrt, or 0
  M rescale;     // negated for maximize: -(g * r) == g * -r exactly, and the clips are symmetric
  M l2, l1;      // coupled decay coefficients (0 when off)
  M decoupled;   // lr * wd for decoupled decay (0 when off)
  M clip_pre;    // gradient clip before coupled decay (+inf when off)
  M clip_post;   // gradient clip after coupled decay (+inf when off)
  M clip_w;      // weight clip (+inf when off)
  M mg_scale;    // 1 / sqrt(1 - rho^step), bias correction of the centered mean gradient (1 when off)
  M nesterov;    // 1 for Nesterov momentum, else 0 (a number: the vectoriser blends on it like on l2)
};

template <typename M>
RMSPROP_HD M clip_abs(M x, M c) {
  // Written with comparisons, not fmin/fmax, so that a NaN gradient stays NaN instead of becoming c.
  return x < -c ? -c : (x > c ? c : x);
}

template <typename M>
RMSPROP_HD M sign_of(M x) {
  return static_cast<M>((x > M(0)) - (x < M(0)));
}

template <typename M>
RMSPROP_HD M sqrt_of(M x) {
#if defined(__CUDA_ARCH__)
  return sqrt(x);  // IEEE-rounded on device too: the build never passes -use_fast_math
#else
  return std::sqrt(x);
#endif
}

RMSPROP_HD double pow_of(double x, double y) {
#if defined(__CUDA_ARCH__)
  return pow(x, y);
#else
  return std::pow(x, y);
#endif
}

// lr, rescale and wd arrive as double (they may have been read from device scalars); the rounding to M
// happens here, once, identically on both sides.
template <typename M>
RMSPROP_HD Coeffs<M> make_coeffs(const rmsprop_ops_hparams &hp, double lr, double rescale, double wd,
                                 int32_t wd_mode) {
  Coeffs<M> c;
  const M inf = static_cast<M>(INFINITY);
  // Bias correction (optax: nu / (1 - rho^step), and mu likewise when centered) is folded into the
  // coefficients, so that off it costs nothing and changes nothing (every factor below is exactly 1):
  // with b = 1 - rho^step,  g / (sqrt(ms/b - (mg/b)^2 + eps) + eps') equals
  // sqrt(b) * g / (sqrt(ms - (mg/sqrt(b))^2 + eps*b) + eps'*sqrt(b)).
  const double b = hp.bias_correction ? 1.0 - pow_of(hp.rho, load_scalar(hp.step)) : 1.0;
  const double sqrt_b = hp.bias_correction ? sqrt_of(b) : 1.0;
  const M lr_b = static_cast<M>(lr * sqrt_b);
  c.lr = lr_b;
  c.rho = static_cast<M>(hp.rho);
  c.one_minus_rho = M(1) - c.rho;
  c.momentum = static_cast<M>(hp.momentum);
  c.mom_scale = hp.lr_in_momentum ? lr_b : static_cast<M>(sqrt_b);
  c.step_scale = hp.lr_in_momentum ? M(1) : static_cast<M>(lr);
  c.eps_in = hp.eps_in_sqrt ? static_cast<M>(hp.epsilon * b) : M(0);
  c.eps_out = hp.eps_in_sqrt ? M(0) : static_cast<M>(hp.epsilon * sqrt_b);
  c.mg_scale = static_cast<M>(1.0 / sqrt_b);
  c.rescale = hp.maximize ? -static_cast<M>(rescale) : static_cast<M>(rescale);
  c.l2 = wd_mode == RMSPROP_OPS_WD_L2 ? static_cast<M>(wd) : M(0);
  c.l1 = wd_mode == RMSPROP_OPS_WD_L1 ? static_cast<M>(wd) : M(0);
  c.decoupled = wd_mode == RMSPROP_OPS_WD_DECOUPLED ? static_cast<M>(lr * wd) : M(0);
  const M clip_g = hp.clip_gradient < 0 ? inf : static_cast<M>(hp.clip_gradient);
  c.clip_pre = hp.clip_after_weight_decay ? inf : clip_g;
  c.clip_post = hp.clip_after_weight_decay ? clip_g : inf;
  c.clip_w = hp.clip_weights < 0 ? inf : static_cast<M>(hp.clip_weights);
  c.nesterov = hp.nesterov ? M(1) : M(0);
  return c;
}

// One element of one step. p is the param (or its master copy) in math precision; ms, mg and mom are
// the state; mg and mom are only touched when CENTERED / MOMENTUM.
//
// Centered: v = ms - mg^2 can come out slightly negative in floating point even though it is a variance;
// it is clamped at 0 before epsilon is added, so the step is lr*g/sqrt(eps) there and never NaN. The
// clamp is written so that a NaN v (from a NaN gradient) stays NaN rather than being hidden.
template <bool CENTERED, bool MOMENTUM, typename M>
RMSPROP_HD void rmsprop_element(M &p, M g, M &ms, M &mg, M &mom, const Coeffs<M> &c) {
  g = g * c.rescale;
  g = clip_abs(g, c.clip_pre);
  // Decay terms are added only when on, so that "off" is an exact identity also for -0 and inf params
  // (0 * inf would be NaN); the condition is uniform, so the vectorised loop turns it into a blend.
  if (c.l2 != M(0)) g = g + c.l2 * p;
  if (c.l1 != M(0)) g = g + c.l1 * sign_of(p);
  g = clip_abs(g, c.clip_post);
  ms = c.rho * ms + c.one_minus_rho * g * g;
  M v = ms;
  if (CENTERED) {
    mg = c.rho * mg + c.one_minus_rho * g;
    const M mgh = mg * c.mg_scale;  // bias correction (make_coeffs); x * 1 is x, exactly, when off
    v = ms - mgh * mgh;
    v = v < M(0) ? M(0) : v;
  }
  const M d = sqrt_of(v + c.eps_in) + c.eps_out;
  if (c.decoupled != M(0)) p = p - c.decoupled * p;
  if (MOMENTUM) {
    const M upd = c.mom_scale * g / d;
    mom = c.momentum * mom + upd;
    // Nesterov (optax trace): the step looks one momentum ahead, upd + momentum * mom.
    p = p - c.step_scale * (c.nesterov != M(0) ? upd + c.momentum * mom : mom);
  } else {
    p = p - c.lr * g / d;
  }
  p = clip_abs(p, c.clip_w);
}

// Pointers of one tensor set, typed. P is the param storage type, M its math type.
template <typename P>
struct SetPtrs {
  using M = math_t<P>;
  P *param;
  const P *grad;
  M *ms;
  M *mom;
  M *mg;
  M *master;
};

// Applies the rule to element i of a set: load, compute in M, store. Shared by both kernels.
template <bool CENTERED, bool MOMENTUM, bool MASTER, typename P>
RMSPROP_HD void rmsprop_apply(const SetPtrs<P> &s, int64_t i, const Coeffs<math_t<P>> &c) {
  using M = math_t<P>;
  M p = MASTER ? s.master[i] : to_math<M>(s.param[i]);
  M ms = s.ms[i];
  M mg = CENTERED ? s.mg[i] : M(0);
  M mom = MOMENTUM ? s.mom[i] : M(0);
  rmsprop_element<CENTERED, MOMENTUM, M>(p, to_math<M>(s.grad[i]), ms, mg, mom, c);
  s.ms[i] = ms;
  if (CENTERED) s.mg[i] = mg;
  if (MOMENTUM) s.mom[i] = mom;
  if (MASTER) s.master[i] = p;
  s.param[i] = from_math<P>(p);
}

}  // namespace rmsprop_ops
