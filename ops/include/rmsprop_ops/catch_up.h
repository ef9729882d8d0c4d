// Closed forms of k steps of the rule (rule.h) with a zero gradient and no weight decay or weight clip:
// what a row-sparse update owes a row it skipped (rows_api.h). With g = 0 one step of rmsprop_element is
//
//   ms  = rho * ms            mg = rho * mg            (centered)
//   mom = momentum * mom + 0  p  = p - step_scale * mom (with a moment buffer; p unchanged without)
//
// so k steps are ms * rho^k, mg * rho^k, mom * momentum^k and p - step_scale * mom * sum_{i=1..k}
// momentum^i. The factors are computed in double (pow_k) from the rule's own rounded coefficients (Coeffs<M>),
// and each state value is multiplied in double and rounded once: within half an ulp of the exact k-step
// value, where the dense path's k separate roundings drift by up to k/2 ulps.
#pragma once

#include <cstdint>

#include "rmsprop_ops/rule.h"

namespace rmsprop_ops {

struct CatchUp {
  int64_t k;         // steps owed; 0: nothing to do
  double decay;      // rho^k
  double mom_decay;  // momentum^k
  double move;       // step_scale * sum_{i=1..k} momentum^i: the parameter's move per unit of moment
};

// x^k by repeated squaring: plain IEEE multiplications, so the CPU and CUDA builds (no contraction on
// either) compute the same bits, which library pow() does not promise.
RMSPROP_HD double pow_k(double x, int64_t k) {
  double r = 1.0;
  for (; k > 0; k >>= 1) {
    if (k & 1) r *= x;
    x *= x;
  }
  return r;
}

template <typename M>
RMSPROP_HD CatchUp make_catch_up(int64_t k, const Coeffs<M> &c) {
  CatchUp u{k, 1.0, 1.0, 0.0};
  if (k <= 0) return u;
  const double rho = static_cast<double>(c.rho), m = static_cast<double>(c.momentum);
  u.decay = pow_k(rho, k);
  u.mom_decay = pow_k(m, k);  // pow(0, k) = 0: without momentum a skipped step leaves mom = 0
  const double sum = m == 1.0 ? static_cast<double>(k) : m * (1.0 - u.mom_decay) / (1.0 - m);
  u.move = static_cast<double>(c.step_scale) * sum;
  return u;
}

// One element caught up. MOMENT: a moment buffer is present; MOVE: the parameter takes the momentum
// moves (LAZY mode; EXACT mode has momentum 0, where the moves are 0).
template <bool CENTERED, bool MOMENT, bool MOVE, typename M>
RMSPROP_HD void catch_up_element(M &p, M &ms, M &mg, M &mom, const CatchUp &u) {
  ms = static_cast<M>(static_cast<double>(ms) * u.decay);
  if (CENTERED) mg = static_cast<M>(static_cast<double>(mg) * u.decay);
  if (MOMENT) {
    if (MOVE) p = static_cast<M>(static_cast<double>(p) - u.move * static_cast<double>(mom));
    // "+ 0": the dense step adds lr * 0 / d, which turns a -0 product into +0.
    mom = static_cast<M>(static_cast<double>(mom) * u.mom_decay) + M(0);
  }
}

}  // namespace rmsprop_ops
