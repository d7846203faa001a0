"""What a runner host has: CPU, GPUs (NVML), framework versions. Django-free and cheap:
no framework is imported, versions come from package metadata."""

import os
import platform
import socket
from importlib import metadata

from runners.engine.fingerprint import cpu_info, gpus


def _version(*names):
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def describe_host() -> dict:
    cpu = cpu_info()
    return {
        "host": socket.gethostname(),
        # The flags let the form's advisor speak for this runner before a run (int8 dot
        # products, 16-bit floats).
        "devices": {"cpu_model": cpu["model"], "cpu_cores": os.cpu_count(),
                    "cpu_flags": cpu["flags"], "gpus": gpus()},
        "versions": {
            "tensorflow": _version("tensorflow", "tensorflow-cpu"),
            "keras": _version("keras"),
            "python": platform.python_version(),
        },
    }


def device_for_slot(hardware: str, slot: int) -> tuple[str, dict]:
    """The device a worker process in pool slot `slot` uses, and the child's environment.

    One run per GPU: pool slot i gets GPU i, pinned with CUDA_VISIBLE_DEVICES so the engine
    sees that GPU alone. A CPU run sees no GPU at all.
    """
    if hardware != "gpu":
        return f"CPU: {cpu_info()['model']}", {"CUDA_VISIBLE_DEVICES": "-1"}
    found = gpus()
    if not found:
        return "GPU requested, none found", {}
    gpu = found[slot % len(found)]
    index = gpu.get("index", slot % len(found))
    return f"GPU {index}: {gpu.get('name')}", {"CUDA_VISIBLE_DEVICES": str(index)}


def pinned_gpu(env: dict) -> int | None:
    """The GPU a child environment of device_for_slot is pinned to; None for none."""
    gpu = env.get("CUDA_VISIBLE_DEVICES")
    return int(gpu) if gpu and gpu != "-1" else None


def gpu_model_queue(model: str) -> str:
    """The queue of one GPU model: "gpu." and the model name in lower-case dashes."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in model.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"gpu.{slug}"


def queue_for(spec: dict) -> str:
    if spec.get("hardware") != "gpu":
        return "cpu"
    model = spec.get("gpu_model")
    return gpu_model_queue(model) if model else "gpu"
