"""D2L's 2-D RMSProp example under three conventions, drawn over the contours of the objective.

f(x) = 0.1 x1^2 + 2 x2^2 from (-5, -2), eta 0.4, gamma (rho) 0.9, 20 steps (Dive into Deep Learning,
7.6). The same hyper-parameters run under:

* ``d2l`` (also Keras / Paddle): ``sqrt(s + eps)``, ``s`` starts at 0 - the book's trajectory;
* ``torch``: ``sqrt(s) + eps``, ``s`` at 0 - the same with eps 1e-6, but with eps 0.1 (dashed) the
  placement changes the path: inside the root eps floors the denominator at ``sqrt(eps)`` (0.32),
  outside at ``eps`` (0.1), so the torch path takes larger steps once ``s`` is small;
* ``tf1`` (also MindSpore): ``s`` starts at 1, so the first steps are about ``lr * g / sqrt(rho)``,
  plain SGD - small where the gradient is small (x1 crawls).

Run: ``python examples/d2l_conventions.py [--out d2l_conventions.png] [--steps 20]``.
"""

from __future__ import annotations

import argparse

import numpy as np

import rmsprop_ops


def f_2d(x1, x2):
    return 0.1 * x1 ** 2 + 2 * x2 ** 2


def trajectory(convention, steps=20, **overrides):
    """Positions visited by RMSProp under ``convention`` with D2L's hyper-parameters."""
    x = np.array([-5.0, -2.0])
    kw = {"learning_rate": 0.4, "rho": 0.9, "epsilon": 1e-6}
    kw.update(overrides)
    opt = rmsprop_ops.RMSProp([x], convention=convention, **kw)
    path = [x.copy()]
    for _ in range(steps):
        opt.step([np.array([0.2 * x[0], 4.0 * x[1]])])
        path.append(x.copy())
    return np.array(path)


PANELS = [
    ("d2l", "d2l / Keras / Paddle\nsqrt(s + eps), s0 = 0"),
    ("torch", "torch\nsqrt(s) + eps, s0 = 0"),
    ("tf1", "TF1 / timm / MindSpore\nsqrt(s + eps), s0 = 1"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="d2l_conventions.png")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x1, x2 = np.meshgrid(np.arange(-5.5, 1.0, 0.1), np.arange(-3.0, 1.0, 0.1))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), sharey=True)
    for ax, (conv, title) in zip(axes, PANELS):
        ax.contour(x1, x2, f_2d(x1, x2), levels=np.geomspace(0.01, 20.0, 16), colors="#1f77b4", linewidths=0.8)
        path = trajectory(conv, args.steps)
        ax.plot(path[:, 0], path[:, 1], "-o", color="#ff7f0e", markersize=3, label="eps = 1e-6")
        big = trajectory(conv, args.steps, epsilon=0.1)
        ax.plot(big[:, 0], big[:, 1], "--s", color="#2ca02c", markersize=2.5, label="eps = 0.1")
        end = path[-1]
        ax.set_title(f"{title}\nstep {args.steps}: x1 {end[0]:.6f} (eps 1e-6), {big[-1, 0]:.6f} (eps 0.1)",
                     fontsize=10)
        ax.set_xlabel("x1")
        ax.legend(loc="lower right", fontsize=8)
        print(f"{conv:>6}: eps 1e-6 -> x1 {end[0]:f}, x2 {end[1]:f};  eps 0.1 -> x1 {big[-1, 0]:f}, "
              f"x2 {big[-1, 1]:f}")
    axes[0].set_ylabel("x2")
    fig.suptitle("RMSProp on f(x) = 0.1 x1^2 + 2 x2^2 (eta 0.4, rho 0.9): same hyper-parameters, "
                 "three conventions")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
