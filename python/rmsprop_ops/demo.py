"""The main job: two small training runs on the pybind11 core with NumPy, printing progress.

1. D2L 7.6: RMSProp on f(x) = 0.1 x1^2 + 2 x2^2 from (-5, -2), eta 0.4, gamma 0.9, eps 1e-6.
2. A two-layer regression network on synthetic data, all its parameters updated by one fused
   multi-tensor call per step (centered RMSProp with momentum, Paddle's defaults otherwise).

    python -m rmsprop_ops.demo [--steps N] [--seed SEED]      (--help explains them)
"""

from __future__ import annotations

import argparse

import numpy as np

import rmsprop_ops


def d2l_2d(epochs: int = 20) -> tuple[float, float]:
    x = np.array([-5.0, -2.0])
    s = np.zeros(2)
    for epoch in range(1, epochs + 1):
        grad = np.array([0.2 * x[0], 4.0 * x[1]])
        rmsprop_ops.rmsprop_(x, grad, s, lr=0.4, rho=0.9, epsilon=1e-6)
        if epoch % 5 == 0:
            print(f"  epoch {epoch}, x1 {x[0]:f}, x2 {x[1]:f}, f {0.1 * x[0] ** 2 + 2 * x[1] ** 2:.6f}")
    return float(x[0]), float(x[1])


def regression(steps: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    n, d, h = 512, 8, 32
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (np.sin(X @ rng.standard_normal(d)) + 0.1 * rng.standard_normal(n)).astype(np.float32)[:, None]
    params = [rng.standard_normal((d, h)).astype(np.float32) * np.float32(1 / np.sqrt(d)),
              np.zeros(h, np.float32),
              rng.standard_normal((h, 1)).astype(np.float32) * np.float32(1 / np.sqrt(h)),
              np.zeros(1, np.float32)]
    ms = [np.zeros_like(p) for p in params]
    mom = [np.zeros_like(p) for p in params]
    mg = [np.zeros_like(p) for p in params]
    first = loss = float("nan")
    for step in range(1, steps + 1):
        W1, b1, W2, b2 = params
        z = X @ W1 + b1
        a = np.tanh(z)
        err = a @ W2 + b2 - y
        loss = float(np.mean(err ** 2))
        if step == 1:
            first = loss
        dout = 2 * err / n
        da = dout @ W2.T * (1 - a ** 2)
        grads = [X.T @ da, da.sum(0), a.T @ dout, dout.sum(0)]
        rmsprop_ops.rmsprop_multi_(params, [g.astype(np.float32) for g in grads], ms, moments=mom, mean_grads=mg,
                                   lr=1e-3, rho=0.95, epsilon=1e-6, momentum=0.9, centered=True)
        if step == 1 or step % (steps // 6 or 1) == 0:
            print(f"  step {step:4d}  mse {loss:.5f}")
    return first, loss


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m rmsprop_ops.demo", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Two small training runs on the rmsprop_ops core with NumPy, printing progress:\n"
                    "D2L 7.6's RMSProp example (its printed result is reproduced exactly), then a two-layer\n"
                    "regression network whose four tensors are updated by one fused call per step.",
        epilog="What is installed and how it was built: python -m rmsprop_ops info")
    ap.add_argument("--steps", type=_positive, default=300, metavar="N",
                    help="training steps of the regression network (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of its data and initial weights (default: %(default)s)")
    args = ap.parse_args(argv)
    print(f"rmsprop_ops {rmsprop_ops.__version__}: CUDA built={rmsprop_ops.built_with_cuda()} "
          f"available={rmsprop_ops.cuda_available()}, CPU threads={rmsprop_ops.get_num_threads()}")
    print("D2L 7.6: RMSProp on 0.1*x1^2 + 2*x2^2 (eta 0.4, gamma 0.9)")
    x1, x2 = d2l_2d()
    print(f"  -> epoch 20, x1 {x1:f}, x2 {x2:f}   (D2L prints: epoch 20, x1 -0.010599, x2 0.000000)")
    print("Two-layer regression, 4 tensors updated by one fused call per step (centered, momentum 0.9)")
    first, final = regression(args.steps, args.seed)
    print(f"  -> mse {first:.4f} -> {final:.4f}")


if __name__ == "__main__":
    main()
