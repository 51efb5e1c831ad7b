"""The heartbeat's GPUs: NVML first, nvidia-smi only when NVML is not there, nothing when neither is.

This machine has no NVIDIA driver, so NVML is really absent here (`nvmlInit` cannot load
libnvidia-ml.so); nvidia-smi is a small script put first on PATH that prints what the real one
prints for `--query-gpu=... --format=csv,noheader,nounits` and notes that it was asked.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from raid import gpus
from raid.gpus import gpu_stats

CSV = "0, NVIDIA H200, 37, 1024, 143771\n1, NVIDIA H200, [N/A], 0, 143771\n"


@pytest.fixture
def fake_smi(tmp_path, monkeypatch) -> Path:
    """A fake nvidia-smi on PATH; the returned file exists once it was run."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    asked = tmp_path / "asked"
    smi = bindir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho \"$@\" > {asked}\ncat <<'EOF'\n{CSV}EOF\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    return asked


def nvml_present() -> bool:
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - ImportError or NVMLError_LibraryNotFound: absent either way
        return False
    pynvml.nvmlShutdown()
    return True


needs_no_nvml = pytest.mark.skipif(nvml_present(), reason="this machine has NVML: the fallback is not taken")


@needs_no_nvml
def test_without_nvml_nvidia_smi_is_read(fake_smi):
    assert gpus.nvml_stats() is None
    stats = gpu_stats()
    assert fake_smi.exists() and "--format=csv,noheader,nounits" in fake_smi.read_text()
    assert [(g.index, g.name, g.utilization) for g in stats] == [(0, "NVIDIA H200", 37.0), (1, "NVIDIA H200", None)]
    assert stats[0].memory_used == 1024 * 2**20 and stats[1].memory_total == 143771 * 2**20


def test_without_the_nvml_package_nvidia_smi_is_read(fake_smi, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    assert [g.index for g in gpu_stats()] == [0, 1] and fake_smi.exists()


@needs_no_nvml
def test_neither_nvml_nor_nvidia_smi_means_no_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_stats() == []


@needs_no_nvml
def test_a_failing_nvidia_smi_means_no_gpus(tmp_path, monkeypatch):
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    (tmp_path / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert gpu_stats() == []


def fake_nvml(gpus_: list[tuple[str, int, int, int]]) -> types.ModuleType:
    """A stand-in for pynvml on a machine with a driver: (name, utilisation, used, total) per GPU."""
    m = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    m.NVMLError = NVMLError
    m.nvmlInit = m.nvmlShutdown = lambda: None
    m.nvmlDeviceGetCount = lambda: len(gpus_)
    m.nvmlDeviceGetHandleByIndex = lambda i: gpus_[i]
    m.nvmlDeviceGetName = lambda h: h[0]
    m.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=h[1], memory=0)
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=h[2], total=h[3], free=h[3] - h[2])
    return m


def test_nvml_comes_first_and_nvidia_smi_is_not_run(fake_smi, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([("NVIDIA A100", 5, 2**30, 40 * 2**30)]))
    [gpu] = gpu_stats()
    assert (gpu.index, gpu.name, gpu.utilization, gpu.memory_used) == (0, "NVIDIA A100", 5.0, 2**30)
    assert not fake_smi.exists()


def test_the_real_nvml_where_a_driver_is(monkeypatch):
    if not nvml_present():
        pytest.skip("no NVIDIA driver here")
    stats = gpus.nvml_stats()
    assert stats and all(g.memory_total and g.name for g in stats)
