"""RMSPROP_OPS_CUDA (cmake/cuda_default.cmake), configured for real with fake ``nvidia-smi`` tools: AUTO
builds CUDA only where a GPU is, for its architecture; ON for every major one; OFF never; bad values
are refused. Configure-only (no compile), a few seconds per case."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CMAKE = shutil.which("cmake")
NVCC = os.environ.get("CUDACXX") or shutil.which("nvcc")

pytestmark = pytest.mark.skipif(CMAKE is None, reason="needs cmake")


def _pybind11_dir():
    try:
        import pybind11
    except ImportError:
        pytest.skip("needs pybind11 (pip install pybind11)")
    return pybind11.get_cmake_dir()


def _fake_smi(bin_dir: pathlib.Path, caps: list[str] | None, listed: bool) -> None:
    """A nvidia-smi that reports ``caps`` for --query-gpu=compute_cap (None: the query fails, as on old
    drivers) and lists one GPU for -L when ``listed``."""
    query = "exit 1" if caps is None else "; ".join(f"echo {c}" for c in caps) or "true"
    listing = 'echo "GPU 0: NVIDIA Fake (UUID: GPU-0)"' if listed else "exit 9"
    bin_dir.mkdir(parents=True, exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\ncase "$*" in\n  *compute_cap*) {query};;\n  *) {listing};;\nesac\n')
    smi.chmod(0o755)


def _configure(tmp_path, mode=None, smi=None, extra_env=None, defines=()):
    env = dict(os.environ, **(extra_env or {}))
    env.pop("CUDAARCHS", None)
    if extra_env and "CUDAARCHS" in extra_env:
        env["CUDAARCHS"] = extra_env["CUDAARCHS"]
    bin_dir = tmp_path / "bin"
    if smi is not None:
        _fake_smi(bin_dir, *smi)
    else:
        _fake_smi(bin_dir, [], listed=False)  # hides any real nvidia-smi
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    cmd = [CMAKE, "-S", str(ROOT), "-B", str(tmp_path / "b"), f"-Dpybind11_DIR={_pybind11_dir()}",
           f"-DPython_EXECUTABLE={sys.executable}", *defines]
    if mode is not None:
        cmd.append(f"-DRMSPROP_OPS_CUDA={mode}")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    cfg = None
    if proc.returncode == 0:
        cfg = json.loads((tmp_path / "b" / "build_config.json").read_text())
    return proc, cfg


needs_nvcc = pytest.mark.skipif(NVCC is None, reason="needs nvcc")
no_real_gpu = pytest.mark.skipif(os.path.isdir("/proc/driver/nvidia/gpus"),
                                 reason="a real NVIDIA driver is present: AUTO finds its GPUs")


def _supported_archs() -> list[int]:
    text = subprocess.run([NVCC, "--list-gpu-arch"], capture_output=True, text=True).stdout
    return sorted(int(a) for a in re.findall(r"compute_(\d+)", text))


@needs_nvcc
@no_real_gpu
def test_auto_follows_the_machine(tmp_path):
    # One build directory reconfigured on "different machines" (fake nvidia-smi tools), as a user's build/
    # is when it moves: the CUDA compiler is detected once, and each configure decides again.
    archs = _supported_archs()
    newest, known = archs[-1], archs[len(archs) // 2]
    cap = f"{known // 10}.{known % 10}"
    too_new = f"{newest // 10 + 1}.{newest % 10}"
    steps = [
        # (mode, nvidia-smi: (caps, listed) or None, $CUDAARCHS, built, architectures, in the reason)
        ("AUTO", None, None, False, "", "found a CUDA compiler but no NVIDIA GPU; RMSPROP_OPS_CUDA=ON builds"),
        # A GPU newer than nvcc gets nvcc's newest PTX; nothing else is built.
        ("AUTO", ([cap, too_new], True), None, True, f"{known};{newest}",
         f"GPUs of compute capability {cap}, {too_new}"),
        ("AUTO", (None, True), None, True, "all-major", "a GPU of unknown architecture"),
        ("AUTO", (["3.0"], True), None, False, "", "older than this CUDA compiler supports"),
        ("AUTO", None, None, False, "", "no NVIDIA GPU"),
        ("ON", None, None, True, "all-major", "RMSPROP_OPS_CUDA=ON"),
        ("on", None, "80", True, "80", "RMSPROP_OPS_CUDA=ON"),
    ]
    for mode, smi, cudaarchs, built, expected_archs, reason in steps:
        proc, cfg = _configure(tmp_path, mode, smi=smi, extra_env={"CUDAARCHS": cudaarchs} if cudaarchs else None)
        where = f"step {mode} {smi} {cudaarchs}"
        assert proc.returncode == 0, f"{where}: {proc.stderr}"
        assert cfg["cuda_built"] is built and cfg["cuda_architectures"] == expected_archs, (where, cfg)
        assert reason in cfg["cuda_reason"], (where, cfg)
        assert f"rmsprop_ops: CUDA kernels {'ON' if built else 'OFF'}" in proc.stdout, where


@pytest.mark.parametrize("mode", ["OFF", "0"])
def test_off_never_builds_cuda(tmp_path, mode):
    proc, cfg = _configure(tmp_path, mode, smi=(["9.0"], True))
    assert proc.returncode == 0, proc.stderr
    assert cfg["cuda_built"] is False and cfg["cuda_reason"] == "RMSPROP_OPS_CUDA=OFF"


def test_a_bad_value_is_refused(tmp_path):
    proc, _ = _configure(tmp_path, "maybe")
    assert proc.returncode != 0
    assert "RMSPROP_OPS_CUDA: expected AUTO, ON or OFF, got 'maybe'" in proc.stderr


@pytest.mark.parametrize("mode, ok", [("AUTO", True), ("ON", False)])
def test_without_a_cuda_compiler(tmp_path, mode, ok):
    proc, cfg = _configure(tmp_path, mode, smi=(["9.0"], True),
                           extra_env={"CUDACXX": str(tmp_path / "no-nvcc"), "CUDA_PATH": str(tmp_path)})
    if ok:
        assert proc.returncode == 0, proc.stderr
        assert cfg["cuda_built"] is False and "no CUDA compiler was found" in cfg["cuda_reason"]
    else:
        assert proc.returncode != 0 and "RMSPROP_OPS_CUDA=ON but no CUDA compiler was found" in proc.stderr
