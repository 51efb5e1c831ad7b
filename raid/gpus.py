"""The node's GPUs for its heartbeat: NVML (nvidia-ml-py) where the driver provides it, else nvidia-smi.

NVML is the driver's own library, read in-process (no program started every heartbeat, no text to
parse). nvidia-smi's CSV is read only when NVML cannot be loaded (the package or the driver's
libnvidia-ml.so missing) or fails; neither there: no GPUs.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

from rai.domain.models import GPUStat

log = logging.getLogger("raid.gpus")

NVIDIA_SMI_TIMEOUT = 5.0  # seconds nvidia-smi may take before its answer is given up
MIB = 2**20


def gpu_stats() -> list[GPUStat]:
    """The GPUs with their utilisation and memory; [] on a node without any."""
    stats = nvml_stats()
    return stats if stats is not None else nvidia_smi_stats()


def nvml_stats() -> list[GPUStat] | None:
    """GPUs as NVML reports them; None when NVML is not there (or fails), so nvidia-smi is asked."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        log.debug("NVML not available (%s): asking nvidia-smi", e)
        return None
    try:
        return [_nvml_gpu(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError as e:
        log.warning("NVML failed reading the GPUs (%s): asking nvidia-smi", e)
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _nvml_gpu(pynvml, index: int) -> GPUStat:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    name = pynvml.nvmlDeviceGetName(handle)
    name = name.decode() if isinstance(name, bytes) else str(name)
    utilization: float | None
    try:
        utilization = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except pynvml.NVMLError:  # not supported on some boards (MIG instances)
        utilization = None
    mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return GPUStat(index=index, name=name, utilization=utilization, memory_used=int(mem.used),
                   memory_total=int(mem.total))


def nvidia_smi_stats() -> list[GPUStat]:
    """GPUs as nvidia-smi's CSV reports them; none when it is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    stats = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5 or not parts[0].isdigit():
            continue
        used, total = _num(parts[3]), _num(parts[4])
        stats.append(GPUStat(index=int(parts[0]), name=parts[1], utilization=_num(parts[2]),
                             memory_used=int(used * MIB) if used is not None else None,
                             memory_total=int(total * MIB) if total is not None else None))
    return stats


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None
