"""Record torch ``RMSprop``, timm ``RMSpropTF`` and Keras 3 ``RMSprop`` checkpoints and trajectories as test
data for tests/mindspore/test_ms_conventions_translate.py.

MindSpore's environment has neither torch nor Keras (MindSpore 2.10 wants numpy<2 and a process of its
own), so the frameworks run here, in an environment with torch, Keras 3 (on its torch backend) and timm
(``pip install --no-deps timm``):

    KERAS_BACKEND=torch python tests/data/record_ms_translation.py   # writes tests/data/ms_translation_refs.npz

Each case runs the framework's optimizer ``K`` steps from the initial params on a noisy quadratic
(gradients ``curv * w + noise`` from the framework's own weights), saves its state (torch / timm
``state_dict()``, Keras ``variables`` and ``get_config()``) and the weights, then runs ``M`` more steps
and saves the weights after each.
"""

import json
import os
import pathlib
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
from timm_optim import timm_optim_module  # noqa: E402

K, M = 5, 5
SHAPES = [(5,), (2, 3)]
OUT = pathlib.Path(__file__).with_name("ms_translation_refs.npz")

CASES = {
    "torch_centered_momentum_wd": ("torch", {"lr": 0.02, "alpha": 0.9, "momentum": 0.5, "centered": True,
                                             "weight_decay": 0.1}),
    "torch_momentum": ("torch", {"lr": 0.01, "momentum": 0.9}),
    "torch_plain": ("torch", {"lr": 0.05}),
    "timm_momentum_wd": ("timm", {"lr": 0.01, "alpha": 0.9, "eps": 1e-3, "momentum": 0.9, "weight_decay": 1e-5}),
    "timm_centered": ("timm", {"lr": 0.01, "alpha": 0.9, "eps": 1e-3, "momentum": 0.5, "centered": True}),
    "keras_centered_momentum": ("keras", {"learning_rate": 0.01, "rho": 0.9, "momentum": 0.9, "centered": True}),
    "keras_ema_decoupled": ("keras", {"learning_rate": 0.01, "momentum": 0.5, "weight_decay": 0.01,
                                      "use_ema": True, "ema_momentum": 0.9}),
}


def problem(seed):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    curv = [rng.uniform(0.1, 3.0, s).astype(np.float32) for s in SHAPES]
    noise = [[(rng.standard_normal(s) * 0.5).astype(np.float32) for s in SHAPES] for _ in range(K + M)]
    return params, curv, noise


def grads(ws, curv, noise_t):
    return [(c * w + n).astype(np.float32) for w, c, n in zip(ws, curv, noise_t)]


def run_torch_like(opt, ts, curv, noise, steps):
    for t in steps:
        for x, g in zip(ts, grads([x.detach().numpy() for x in ts], curv, noise[t])):
            x.grad = torch.from_numpy(g)
        opt.step()


def run_keras(opt, vs, curv, noise, steps):
    for t in steps:
        opt.apply([torch.from_numpy(g) for g in grads([np.asarray(v.numpy()) for v in vs], curv, noise[t])], vs)


def record(name, source, kw, seed, out):
    params, curv, noise = problem(seed)
    meta = {"source": source, "kwargs": kw, "K": K, "M": M, "shapes": SHAPES}
    if source == "keras":
        vs = [keras.Variable(p) for p in params]
        opt = keras.optimizers.RMSprop(**kw)
        run_keras(opt, vs, curv, noise, range(K))
        meta["config"] = opt.get_config()
        for i, v in enumerate(opt.variables):
            out[f"{name}/variables/{i}"] = np.array(v.numpy(), copy=True)   # not a view: training goes on
        weights = lambda: [np.array(v.numpy(), copy=True) for v in vs]  # noqa: E731
        step = lambda t: run_keras(opt, vs, curv, noise, range(t, t + 1))  # noqa: E731
    else:
        ts = [torch.tensor(p, requires_grad=True) for p in params]
        if source == "torch":
            opt = torch.optim.RMSprop(ts, foreach=False, **kw)
        else:
            with timm_optim_module("rmsprop_tf") as mod:
                opt = mod.RMSpropTF(ts, **kw)
        run_torch_like(opt, ts, curv, noise, range(K))
        sd = opt.state_dict()
        meta["param_groups"] = sd["param_groups"]
        for pid, st in sd["state"].items():
            for key, value in st.items():
                out[f"{name}/state/{pid}/{key}"] = np.array(value.detach().numpy() if hasattr(value, "detach")
                                                            else value, copy=True)   # not a view: training goes on
        weights = lambda: [x.detach().numpy().copy() for x in ts]  # noqa: E731
        step = lambda t: run_torch_like(opt, ts, curv, noise, range(t, t + 1))  # noqa: E731
    for i, (p, c) in enumerate(zip(params, curv)):
        out[f"{name}/params0/{i}"] = p
        out[f"{name}/curv/{i}"] = c
    for t, row in enumerate(noise):
        for i, n in enumerate(row):
            out[f"{name}/noise/{t}/{i}"] = n
    for i, w in enumerate(weights()):
        out[f"{name}/params_k/{i}"] = w
    for t in range(K, K + M):
        step(t)
        for i, w in enumerate(weights()):
            out[f"{name}/trajectory/{t - K}/{i}"] = w
    if source == "keras" and kw.get("use_ema"):
        opt.finalize_variable_values(vs)
        for i, w in enumerate(weights()):
            out[f"{name}/averages_end/{i}"] = w
    out[f"{name}/meta"] = np.array(json.dumps(meta))


def main():
    out = {}
    for seed, (name, (source, kw)) in enumerate(CASES.items(), start=30):
        record(name, source, kw, seed, out)
    out["versions"] = np.array(json.dumps({"torch": torch.__version__, "keras": keras.__version__}))
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({len(out)} arrays): torch {torch.__version__}, keras {keras.__version__}")


if __name__ == "__main__":
    main()
