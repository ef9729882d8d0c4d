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
def test_auto_without_a_gpu_builds_no_cuda(tmp_path):
    proc, cfg = _configure(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert cfg["cuda_mode"] == "AUTO" and cfg["cuda_built"] is False
    assert "found a CUDA compiler but no NVIDIA GPU; RMSPROP_OPS_CUDA=ON builds the kernels anyway" in cfg["cuda_reason"]
    assert "rmsprop_ops: CUDA kernels OFF" in proc.stdout


@needs_nvcc
def test_auto_builds_for_the_gpus_found(tmp_path):
    archs = _supported_archs()
    newest, known = archs[-1], archs[len(archs) // 2]
    too_new = f"{newest // 10 + 1}.{newest % 10}"
    proc, cfg = _configure(tmp_path, smi=([f"{known // 10}.{known % 10}", too_new], True))
    assert proc.returncode == 0, proc.stderr
    assert cfg["cuda_built"] is True
    # A GPU newer than nvcc gets nvcc's newest PTX; nothing else is built.
    assert cfg["cuda_architectures"] == f"{known};{newest}"
    assert f"GPUs of compute capability {known // 10}.{known % 10}, {too_new}" in cfg["cuda_reason"]


@needs_nvcc
def test_auto_with_a_gpu_of_unknown_capability_builds_every_major(tmp_path):
    proc, cfg = _configure(tmp_path, smi=(None, True))
    assert proc.returncode == 0, proc.stderr
    assert cfg["cuda_built"] is True and cfg["cuda_architectures"] == "all-major"


@needs_nvcc
@no_real_gpu
def test_auto_with_a_gpu_too_old_for_nvcc_builds_no_cuda(tmp_path):
    proc, cfg = _configure(tmp_path, smi=(["3.0"], True))
    assert proc.returncode == 0, proc.stderr
    assert cfg["cuda_built"] is False and "older than this CUDA compiler supports" in cfg["cuda_reason"]


@needs_nvcc
@pytest.mark.parametrize("mode, cudaarchs, archs", [("ON", None, "all-major"), ("on", "80", "80")])
def test_on_builds_cuda_without_a_gpu(tmp_path, mode, cudaarchs, archs):
    proc, cfg = _configure(tmp_path, mode, extra_env={"CUDAARCHS": cudaarchs} if cudaarchs else None)
    assert proc.returncode == 0, proc.stderr
    assert cfg["cuda_built"] is True and cfg["cuda_architectures"] == archs


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
