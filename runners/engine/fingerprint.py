"""What ran the benchmark: timings mean nothing without the hardware and software behind them."""

import os
import platform
import sys

# What the advisor and a reader of a benchmark need: vector width, int8 dot products
# (VNNI), 16-bit float arithmetic (avx512_fp16, avx512_bf16, and AMX's tiles below).
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                     "avx512_fp16")


def fingerprint(backend):
    cpu = cpu_info()
    return {
        "cpu_model": cpu["model"],
        "logical_cores": os.cpu_count(),
        "cpu_flags": cpu["flags"],
        "gpus": gpus(),
        "python": platform.python_version(),
        # Only where it is loaded already: importing TensorFlow costs seconds, and under JAX
        # it played no part in the run.
        "tensorflow": _version("tensorflow") if backend == "tensorflow" else None,
        "keras": _version("keras"),
        "backend": backend,
        "jax": _version("jax") if backend == "jax" else None,
        "litert": _version("ai_edge_litert"),
        "platform": platform.platform(),
        **_accelerator_stack(backend),
    }


def cpu_flags():
    """This machine's CPU flags of interest (pure: reads /proc/cpuinfo)."""
    return cpu_info()["flags"]


def _accelerator_stack(backend):
    """CUDA and cuDNN versions the framework was built with (TensorFlow) or runs (JAX)."""
    found = {"cuda": None, "cudnn": None}
    if backend == "tensorflow" and "tensorflow" in sys.modules:
        info = sys.modules["tensorflow"].sysconfig.get_build_info()
        found["cuda"] = info.get("cuda_version")
        found["cudnn"] = info.get("cudnn_version")
    elif backend == "jax" and "jax" in sys.modules:
        try:
            device = sys.modules["jax"].devices()[0]
            if device.platform == "gpu":
                found["cuda"] = device.client.platform_version
        except Exception:  # noqa: BLE001 - a version string is not worth failing a run for
            pass
    return found


def gpus():
    """NVIDIA GPUs through NVML, or [] where there is no driver or no library."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            found.append({
                "name": _text(pynvml.nvmlDeviceGetName(handle)),
                "memory_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                "driver": driver,
            })
        return found
    except pynvml.NVMLError:
        return []
    finally:
        pynvml.nvmlShutdown()


def cpu_info():
    """This machine's CPU model and flags of interest (pure: reads /proc/cpuinfo)."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    # AMX shows up as several flags (amx_tile, amx_bf16, amx_int8); report each that exists.
    wanted = [f for f in FLAGS_OF_INTEREST if f in flags]
    wanted += sorted(f for f in flags if f.startswith("amx"))
    return {"model": model or platform.processor() or None, "flags": wanted}


def _version(module):
    loaded = sys.modules.get(module)
    return getattr(loaded, "__version__", None) if loaded else None


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
