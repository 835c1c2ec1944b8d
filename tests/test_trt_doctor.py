"""`sweep doctor`'s TensorRT advice: the packages and versions that make python-trt / cpp-trt work, without network."""

from __future__ import annotations

import socket

import pytest

from sweep import trt_api
from sweep.doctor import checks, trt_install


def test_advice_for_a_cuda_torch_names_the_matching_release_and_its_tensorrt() -> None:
    advice = trt_install("2.11.0+cu130", "13.0")
    assert "pip install torch-tensorrt==2.11.0" in advice["python-trt"]
    assert "tensorrt-cu13<10.16.0,>=10.15.1 (TensorRT 10)" in advice["python-trt"]
    assert "libnvinfer.so.10" in advice["cpp-trt"] and "libtorchtrt_runtime.so" in advice["cpp-trt"]
    assert "CPU build" not in advice["python-trt"] and "CUDA 13" not in advice["python-trt"]


def test_advice_says_when_the_torch_build_cannot_run_the_wheel() -> None:
    assert "this torch is a CPU build: TensorRT needs a CUDA 13 build of torch 2.13" in trt_install("2.13.0", None)[
        "python-trt"]
    mismatch = trt_install("2.12.0+cu126", "12.6")["cpp-trt"]
    assert "built for CUDA 13" in mismatch and "this torch for CUDA 12.6" in mismatch


def test_advice_for_a_torch_no_checked_release_matches() -> None:
    advice = trt_install("2.8.0", "12.8")
    assert set(advice.values()) == {
        f"no torch-tensorrt release that sweep checks ({trt_api.supported_range()}) installs with torch 2.8.0; "
        "use a torch of those releases"}


def test_doctor_here_names_what_to_install_and_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """On this CPU machine TensorRT is missing: every TensorRT runtime row says what to install."""
    import torch

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("sweep doctor opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    rows = {name: (ok, detail) for name, ok, detail in checks("cpu")}
    release = trt_api.release_for_torch(torch.__version__)
    assert release is not None
    for runtime in ("python-trt", "cpp-trt"):
        ok, detail = rows[f"runtime {runtime}"]
        assert not ok and f"torch-tensorrt=={release.version}" in detail
        assert f"TensorRT {release.tensorrt_major}" in detail
    assert not rows["torch_tensorrt"][0] and f"torch-tensorrt=={release.version}" in rows["torch_tensorrt"][1]
