"""Record torch ``RMSprop``, timm ``RMSpropTF`` and Keras 3 ``RMSprop`` states and trajectories as test data
for tests/paddle/test_paddle_conventions_translate.py.

The Paddle environment has neither torch nor Keras (the frameworks do not share a venv), so the
frameworks run here, in the core environment (torch 2.13, Keras 3 on its torch backend, timm's
``rmsprop_tf.py`` loaded without the rest of timm):

    python tests/data/record_framework_states.py   # writes tests/data/framework_states.npz

For each case the framework trains from ``init`` for ``STEPS`` steps, with gradients ``curv * w + noise``
computed from its own weights, then ``STEPS`` more. Saved: the inputs, the weights after the first half,
the framework's own state at that point (torch / timm: ``state_dict()``'s tensors and groups; Keras:
``[v.numpy() for v in opt.variables]`` and ``get_config()``), every step's weights in the second half, and
the state at its end (under ``<case>/end/``).
Loading that state into the Paddle optimizer must continue like the framework did; the Paddle optimizer
trained through the first half must export that same state.
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
from timm_optim import timm_optim_module  # noqa: E402

STEPS = 6
SHAPES = [(3, 4), (4,), (2, 3)]  # the first is a Linear weight: torch [out, in]; Paddle's is [in, out]

CASES = {
    "torch_momentum": ("torch", {"lr": 0.02, "momentum": 0.9}),
    "torch_centered_decay": ("torch", {"lr": 0.02, "momentum": 0.5, "centered": True, "weight_decay": 0.1,
                                       "alpha": 0.9}),
    "torch_plain": ("torch", {"lr": 0.05}),
    "timm_lr_inside": ("timm", {"lr": 0.02, "alpha": 0.9, "eps": 1e-3, "momentum": 0.9, "lr_in_momentum": True}),
    "timm_lr_outside": ("timm", {"lr": 0.02, "alpha": 0.9, "eps": 1e-3, "momentum": 0.9, "lr_in_momentum": False}),
    "timm_centered_decay": ("timm", {"lr": 0.02, "alpha": 0.9, "eps": 1e-3, "momentum": 0.9, "centered": True,
                                     "weight_decay": 1e-2}),
    "keras_momentum": ("keras", {"learning_rate": 0.02, "momentum": 0.9}),
    "keras_centered_ema": ("keras", {"learning_rate": 0.02, "momentum": 0.5, "centered": True, "use_ema": True,
                                     "ema_momentum": 0.8}),
    "keras_decay": ("keras", {"learning_rate": 0.02, "momentum": 0.9, "weight_decay": 0.05}),
}


def _grads(ws, curv, noise_t):
    return [(c * np.asarray(w, np.float64) + n).astype(np.float32) for w, c, n in zip(ws, curv, noise_t)]


def _torch_like(opt_cls, kw, init, curv, noise, out, name):
    ts = [torch.tensor(w, requires_grad=True) for w in init]
    opt = opt_cls(ts, **kw)

    def run(steps):
        traj = []
        for t in steps:
            for x, g in zip(ts, _grads([x.detach().numpy() for x in ts], curv, noise[t])):
                x.grad = torch.from_numpy(g)
            opt.step()
            traj.append([x.detach().numpy().copy() for x in ts])
        return traj

    def save(where):
        sd = opt.state_dict()
        groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
        out[f"{name}/{where}groups"] = np.array(json.dumps(groups))
        for pid, st in sd["state"].items():
            for key, value in st.items():
                # a copy: state_dict() holds the live tensors, which the second half goes on updating
                out[f"{name}/{where}state/{pid}/{key}"] = np.array(value.detach().numpy() if hasattr(value, "detach")
                                                                   else value)

    run(range(STEPS))
    save("")
    mid = [x.detach().numpy().copy() for x in ts]
    traj = run(range(STEPS, 2 * STEPS))
    save("end/")
    return mid, traj


def _keras(kw, init, curv, noise, out, name):
    import keras

    vs = [keras.Variable(w) for w in init]
    opt = keras.optimizers.RMSprop(**kw)

    def run(steps):
        traj = []
        for t in steps:
            opt.apply([torch.from_numpy(g) for g in _grads([np.asarray(v.numpy()) for v in vs], curv, noise[t])], vs)
            traj.append([np.asarray(v.numpy()).copy() for v in vs])
        return traj

    def save(where):
        out[f"{name}/{where}config"] = np.array(json.dumps(opt.get_config(), default=float))
        for i, v in enumerate(opt.variables):
            out[f"{name}/{where}variables/{i}"] = np.array(v.numpy())  # a copy, as above

    run(range(STEPS))
    save("")
    mid = [np.asarray(v.numpy()).copy() for v in vs]
    traj = run(range(STEPS, 2 * STEPS))
    save("end/")
    return mid, traj


def main():
    import keras

    rng = np.random.default_rng(2121)
    init = [rng.uniform(-1.0, 1.0, s).astype(np.float32) for s in SHAPES]
    curv = [rng.uniform(0.2, 2.0, s) for s in SHAPES]
    noise = [[rng.normal(0.0, 0.3, s) for s in SHAPES] for _ in range(2 * STEPS)]
    out = {"cases": np.array(json.dumps(CASES)), "steps": np.array(STEPS),
           "versions": np.array(json.dumps({"torch": torch.__version__, "keras": keras.__version__}))}
    for i in range(len(SHAPES)):
        out[f"init/{i}"], out[f"curv/{i}"] = init[i], curv[i]
        out[f"noise/{i}"] = np.stack([noise[t][i] for t in range(2 * STEPS)])
    with timm_optim_module("rmsprop_tf") as timm_mod:
        assert timm_mod is not None, "pip install --no-deps timm"
        for name, (framework, kw) in CASES.items():
            if framework == "keras":
                mid, traj = _keras(kw, init, curv, noise, out, name)
            else:
                cls = torch.optim.RMSprop if framework == "torch" else timm_mod.RMSpropTF
                kw = dict(kw, foreach=False) if framework == "torch" else kw
                mid, traj = _torch_like(cls, kw, init, curv, noise, out, name)
            for i, w in enumerate(mid):
                out[f"{name}/mid/{i}"] = w
                out[f"{name}/traj/{i}"] = np.stack([step[i] for step in traj])
    path = pathlib.Path(__file__).resolve().parent / "framework_states.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
