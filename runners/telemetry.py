"""Hardware telemetry of a running engine process, sampled about once a second.

Host CPU and the resident memory of the engine (with its children) through psutil; GPU
utilization and memory through NVML for the GPU the run is pinned to.
"""

import time

import psutil


class Sampler:
    def __init__(self, pid: int, gpu_index: int | None = None):
        self.started = time.monotonic()
        self.process = psutil.Process(pid)
        psutil.cpu_percent(None)  # the first call only sets the reference point
        self.gpu = _GpuProbe(gpu_index) if gpu_index is not None else None

    def sample(self) -> dict:
        rss = 0
        try:
            for proc in [self.process, *self.process.children(recursive=True)]:
                rss += proc.memory_info().rss
        except psutil.Error:  # the engine exited between two looks
            pass
        sample = {
            "event": "telemetry",
            "t": round(time.monotonic() - self.started, 2),
            "cpu_percent": psutil.cpu_percent(None),
            "rss_mb": round(rss / 2**20, 1),
        }
        if self.gpu is not None:
            sample.update(self.gpu.sample())
        return sample

    def close(self):
        if self.gpu is not None:
            self.gpu.close()


class _GpuProbe:
    def __init__(self, index):
        import pynvml

        self.nvml = pynvml
        pynvml.nvmlInit()
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)

    def sample(self):
        try:
            rates = self.nvml.nvmlDeviceGetUtilizationRates(self.handle)
            memory = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
        except self.nvml.NVMLError:
            return {}
        return {"gpu_util": rates.gpu, "gpu_mem_mb": round(memory.used / 2**20, 1)}

    def close(self):
        self.nvml.nvmlShutdown()


def make_sampler(pid, gpu_index=None):
    """A sampler, or None where this machine cannot be sampled (the run goes on)."""
    try:
        return Sampler(pid, gpu_index)
    except Exception:  # noqa: BLE001 - telemetry is never worth failing a run for
        try:
            return Sampler(pid, None)
        except Exception:  # noqa: BLE001
            return None
