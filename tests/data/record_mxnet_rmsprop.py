"""Record MXNet 1.9.1's RMSProp trajectories as test data for tests/test_optimizer_mxnet.py.

MXNet 1.9.1 installs only beside numpy<1.24, so it runs in its own environment:

    python3 -m venv /tmp/venv-mx && /tmp/venv-mx/bin/pip install "numpy<1.24" mxnet==1.9.1
    /tmp/venv-mx/bin/python tests/data/record_mxnet_rmsprop.py   # writes tests/data/mxnet_1.9.1_rmsprop.npz

It drives ``mx.optimizer.RMSProp.update`` (MXNet 1.x: the fused ``rmsprop_update`` /
``rmspropalex_update`` kernels; 1.x names rho ``gamma1`` and momentum ``gamma2``) on three float32 weights
for 12 steps, with gradients ``curv * w + noise`` computed from MXNet's own weights, and saves the
inputs, every step's weights and the final states.
"""

import json
import pathlib

import mxnet as mx
import numpy as np

STEPS = 12
SHAPES = [(5,), (2, 3), (4,)]

CASES = {
    "plain": {"learning_rate": 0.01},
    "options": {"learning_rate": 0.01, "rescale_grad": 0.5, "clip_gradient": 0.8, "wd": 0.05, "clip_weights": 1.1},
    "centered": {"learning_rate": 0.005, "centered": True},
    "centered_options": {"learning_rate": 0.01, "centered": True, "gamma2": 0.7, "rescale_grad": 2.0,
                         "clip_gradient": 1.5, "wd": 0.02, "clip_weights": 1.3, "epsilon": 1e-5, "gamma1": 0.95},
    "mults": {"learning_rate": 0.01, "wd": 0.1, "param_idx2name": {"0": "fc_weight", "1": "fc_bias", "2": "bn_gamma"},
              "lr_mult": {"0": 2.0, "fc_bias": 0.5}},
    "scheduler": {"learning_rate": 0.02, "centered": True, "factor_scheduler": [4, 0.5]},
}


def _keys(d):
    return {int(k) if k.isdigit() else k: v for k, v in d.items()}


def main():
    rng = np.random.default_rng(2024)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    curv = [rng.uniform(0.5, 4.0, s).astype(np.float32) for s in SHAPES]
    noise = [np.stack([rng.standard_normal(s).astype(np.float32) for _ in range(STEPS)]) for s in SHAPES]
    out = {"cases": np.array(json.dumps(CASES)), "mxnet_version": np.array(mx.__version__)}
    for i in range(len(SHAPES)):
        out[f"init_{i}"], out[f"curv_{i}"], out[f"noise_{i}"] = init[i], curv[i], noise[i]
    for name, cfg in CASES.items():
        kw = dict(cfg)
        lr_mult = kw.pop("lr_mult", None)
        if "param_idx2name" in kw:
            kw["param_idx2name"] = _keys(kw["param_idx2name"])
        if "factor_scheduler" in kw:
            step, factor = kw.pop("factor_scheduler")
            kw["lr_scheduler"] = mx.lr_scheduler.FactorScheduler(step=step, factor=factor)
        opt = mx.optimizer.RMSProp(**kw)
        if lr_mult:
            opt.set_lr_mult(_keys(lr_mult))
        ws = [mx.nd.array(w, dtype=np.float32) for w in init]
        states = [opt.create_state(i, w) for i, w in enumerate(ws)]
        traj = [[w.asnumpy()] for w in ws]
        for t in range(STEPS):
            for i, w in enumerate(ws):
                g = mx.nd.array(curv[i] * w.asnumpy() + noise[i][t], dtype=np.float32)
                opt.update(i, w, g, states[i])
                traj[i].append(w.asnumpy())
        for i in range(len(SHAPES)):
            out[f"{name}/traj_{i}"] = np.stack(traj[i])
            for k, s in enumerate(states[i]):
                out[f"{name}/state_{i}_{k}"] = s.asnumpy()
    path = pathlib.Path(__file__).with_name("mxnet_1.9.1_rmsprop.npz")
    np.savez(path, **out)
    print(f"wrote {path} ({len(out)} arrays)")


if __name__ == "__main__":
    main()
