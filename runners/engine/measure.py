"""All measurement in one place: runtimes, accuracy, latency, throughput, sizes, statistics.

A runtime is whatever ships: the Keras model or a TFLite flatbuffer in LiteRT.  Both expose
``predict(x) -> float32 probabilities`` so every number comes from the same code path.
"""

import gzip
import os
import time

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
# Bootstrap draws are materialised in chunks to bound memory for long benchmarks.
BOOTSTRAP_CHUNK_VALUES = 4_000_000
THROUGHPUT_SAMPLES_PER_TRIAL = 1024


class KerasRuntime:
    """The trained Keras model through a warm compiled inference function.

    ``predict_on_batch`` spends milliseconds per call in Keras's data handling and
    distribution bookkeeping, which swamps batch-1 latency of small models and made Keras
    look 100x slower than LiteRT.  This calls ``model(x, training=False)`` through a
    function compiled once per input shape: a ``tf.function`` (with XLA when the model was
    compiled with jit_compile) under TensorFlow, ``jax.jit`` of the stateless call under JAX
    with jit_compile, and the plain eager call under JAX without it (what Keras itself does).
    """

    runtime = "keras"

    def __init__(self, model, path, jit=None):
        import keras

        self.model = model
        self.path = path
        # A loaded file knows nothing of how it was compiled: the benchmark says.
        self.jit = bool(getattr(model, "jit_compile", False)) if jit is None else bool(jit)
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            function = tf.function(lambda x: model(x, training=False), jit_compile=self.jit)
            # One concrete function per input shape, traced once: calling it skips the
            # tf.function dispatch (argument hashing, trace-cache lookup) on every call.
            concrete = {}

            def call(x):
                key = (x.shape, x.dtype.str)
                if key not in concrete:
                    concrete[key] = function.get_concrete_function(
                        tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)))
                return concrete[key](tf.convert_to_tensor(x))

            self._call = call
            self.how = (f"concrete tf.function of model(x, training=False), "
                        f"jit_compile={self.jit}")
        elif backend == "jax" and self.jit:
            import jax

            stateless = jax.jit(lambda t, n, x: model.stateless_call(t, n, x, training=False)[0])
            trainable = [v.value for v in model.trainable_variables]
            fixed = [v.value for v in model.non_trainable_variables]
            self._call = lambda x: stateless(trainable, fixed, x)
            self.how = "jax.jit of model.stateless_call(training=False), jit_compile=True"
        else:
            self._call = lambda x: model(x, training=False)
            self.how = f"eager model(x, training=False) on {backend}, jit_compile=False"

    def predict(self, x):
        return np.asarray(self._call(x), dtype=np.float32)


class TFLiteRuntime:
    """A .tflite file in the LiteRT interpreter, quantizing inputs when the model wants int8."""

    runtime = "tflite"

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads or _cores())
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = None

    def predict(self, x):
        if self._batch != len(x):
            # Resizing reallocates every tensor, so it happens once per batch size, not per call.
            self.interpreter.resize_tensor_input(self._input["index"], [len(x), *x.shape[1:]])
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self._batch = len(x)
        self.interpreter.set_tensor(self._input["index"], _quantize(x, self._input))
        self.interpreter.invoke()
        return _dequantize(self.interpreter.get_tensor(self._output["index"]), self._output)

    def timed_predict(self, x):
        """Seconds spent in ``invoke()`` alone, for one call of ``predict``.

        The Python around it (resizing checks, quantizing the input, copying the output)
        costs about 1.5 us a call, a third of a small int8 model's invoke here: the same
        for every TFLite model, so invoke-only latency compares two of them more sharply.
        """
        if self._batch != len(x):
            self.predict(x)
        self.interpreter.set_tensor(self._input["index"], _quantize(x, self._input))
        started = time.perf_counter()
        self.interpreter.invoke()
        invoked = time.perf_counter() - started
        _dequantize(self.interpreter.get_tensor(self._output["index"]), self._output)
        return invoked


def accuracy(runtime, x, y, batch_size):
    """Top-1 accuracy; the last batch is padded so compiled paths never see a new shape."""
    correct = 0
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        probs = runtime.predict(_pad(batch, batch_size))[: len(batch)]
        correct += int(np.sum(np.argmax(probs, axis=-1) == y[start : start + batch_size]))
    return correct / len(x)


def latency(runtime, x, *, trials, samples, warmup):
    """Batch-1 latency in milliseconds over ``trials`` repeated trials of ``samples`` calls.

    Calls cycle through different test samples so no cache favours one input.  Per-trial
    medians are returned too: they are the unit the web resamples for speedup ratios.
    """
    singles = [x[i : i + 1] for i in range(len(x))]
    for i in range(warmup):
        runtime.predict(singles[i % len(singles)])
    per_trial = np.empty((trials, samples))
    call = 0
    for t in range(trials):
        for s in range(samples):
            one = singles[call % len(singles)]
            call += 1
            started = time.perf_counter()
            runtime.predict(one)
            per_trial[t, s] = (time.perf_counter() - started) * 1000.0
    return summarize_latency(per_trial)


def summarize_latency(per_trial):
    """Percentiles of all calls pooled, the bootstrap CI of their median, per-trial medians."""
    per_trial = np.atleast_2d(np.asarray(per_trial, dtype=np.float64))
    pooled = per_trial.ravel()
    p50, p95, p99 = np.percentile(pooled, [50, 95, 99])
    return {
        "latency_ms_p50": float(p50),
        "latency_ms_p95": float(p95),
        "latency_ms_p99": float(p99),
        "latency_ms_ci95": bootstrap_median_ci(per_trial),
        "latency_samples": [float(m) for m in np.median(per_trial, axis=1)],
    }


def throughput(runtime, x, *, batch_size, trials, warmup):
    """Samples per second at ``batch_size``: median over trials, its bootstrap CI, each trial."""
    batch = _pad(x[:batch_size], batch_size)
    for _ in range(max(1, warmup // 5)):
        runtime.predict(batch)
    calls = max(3, -(-THROUGHPUT_SAMPLES_PER_TRIAL // batch_size))
    rates = []
    for _ in range(trials):
        started = time.perf_counter()
        for _ in range(calls):
            runtime.predict(batch)
        rates.append(calls * batch_size / (time.perf_counter() - started))
    return {
        "inference_samples_per_s": float(np.median(rates)),
        "inference_samples_per_s_ci95": bootstrap_median_ci(rates),
        "inference_samples_per_s_trials": [float(r) for r in rates],
    }


def train_throughput(epochs, samples):
    """Train-only samples/s per epoch after the first (which carries tracing and warm-up).

    The median is the figure; its bootstrap CI and the per-epoch list let the web bootstrap a
    train speedup.  With one epoch only that epoch is used, warm-up included.
    """
    times = [e["train_seconds"] for e in epochs]
    steady = times[1:] if len(times) >= 2 else times
    rates = [samples / t for t in steady if t > 0]
    if not rates:
        return {"train_samples_per_s": None, "train_samples_per_s_ci95": None,
                "train_samples_per_s_epochs": []}
    return {
        "train_samples_per_s": float(np.median(rates)),
        "train_samples_per_s_ci95": bootstrap_median_ci(rates) if len(rates) > 1 else None,
        "train_samples_per_s_epochs": rates,
    }


# Below this many units (executions, replicates), a percentile bootstrap of their mean
# undercovers: it has no idea how wide the spread of so few could be. Student's t does.
# On synthetic benchmarks with a known between-process spread (tests/test_measure.py), the
# 95% bootstrap covered 73% at 3 executions, 85% at 5, 90% at 10, 91% at 20; Student t
# 92-95% throughout. bench/aa.py measures both on this machine's real A/A runs.
T_INTERVAL_BELOW = 20


def paired_speedup(groups, *, level=0.95, method=None, resamples=BOOTSTRAP_RESAMPLES, seed=0):
    """Speedup and interval from paired ratios grouped by the unit that varies most.

    ``groups`` holds, per unit (a benchmark execution, a training replicate), the ratios
    of the pair measured side by side in it (per round, per epoch). A unit's figure is the
    median of its log-ratios; the speedup is exp of their mean (the geometric mean of the
    units' median ratios). The interval: Student's t on the units' log-ratios below
    ``T_INTERVAL_BELOW`` units, else a hierarchical bootstrap (units, then ratios within).
    Returns (speedup, [low, high] or None with fewer than two units, method).
    """
    logs = [np.log(np.asarray(g, dtype=np.float64)) for g in groups]
    logs = [g[np.isfinite(g)] for g in logs]
    logs = [g for g in logs if len(g)]
    if not logs:
        return None, None, "not measured"
    units = np.array([np.median(g) for g in logs])
    speedup = float(np.exp(units.mean()))
    if len(units) < 2:
        return speedup, None, "one unit: no interval"
    method = method or ("t" if len(units) < T_INTERVAL_BELOW else "bootstrap")
    if method == "t":
        low, high = t_interval(units, level=level)
        how = f"Student t over {len(units)} units"
    else:
        low, high = hierarchical_bootstrap_ci(logs, level=level, resamples=resamples, seed=seed)
        how = f"hierarchical bootstrap over {len(units)} units"
    return speedup, [float(np.exp(low)), float(np.exp(high))], how


def t_interval(values, *, level=0.95):
    """Student-t interval of the mean of ``values`` (at least two)."""
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    half = t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return float(values.mean() - half), float(values.mean() + half)


def hierarchical_bootstrap_ci(groups, *, level=0.95, resamples=BOOTSTRAP_RESAMPLES, seed=0):
    """Percentile interval of the mean of the groups' medians, resampling groups and then
    values within each chosen group (Kalibera and Jones' two-level bootstrap)."""
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    rng = np.random.default_rng(seed)
    n = len(groups)
    width = min(len(g) for g in groups)
    # Rectangular, so one draw covers every resample; a longer group gives its first values.
    table = np.stack([g[:width] for g in groups])
    chunk = max(1, BOOTSTRAP_CHUNK_VALUES // (n * width))
    means = []
    for done in range(0, resamples, chunk):
        size = min(chunk, resamples - done)
        which = rng.integers(0, n, size=(size, n))
        inner = rng.integers(0, width, size=(size, n, width))
        means.append(np.median(table[which[..., np.newaxis], inner], axis=2).mean(axis=1))
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(np.concatenate(means), [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_median_ci(groups, *, level=0.95, resamples=BOOTSTRAP_RESAMPLES, seed=0):
    """Percentile-bootstrap CI of the pooled median, resampling trials and then calls.

    Timings vary more between trials (frequency scaling, neighbours) than within one, so
    resampling only the pooled calls would give intervals too narrow; resampling trials
    first keeps that variation.  A single group reduces to the ordinary bootstrap.
    """
    groups = np.atleast_2d(np.asarray(groups, dtype=np.float64))
    n_groups, n_calls = groups.shape
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_CHUNK_VALUES // groups.size)
    medians = []
    for done in range(0, resamples, chunk):
        size = min(chunk, resamples - done)
        which = rng.integers(0, n_groups, size=(size, n_groups))
        calls = rng.integers(0, n_calls, size=(size, n_groups, n_calls))
        draws = groups[which[..., np.newaxis], calls].reshape(size, -1)
        medians.append(np.median(draws, axis=1))
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(np.concatenate(medians), [tail, 100 - tail])
    return [float(low), float(high)]


def file_sizes(path):
    """(bytes on disk, bytes gzip -9 compressed): compressed size shows what sparsity buys."""
    with open(path, "rb") as f:
        content = f.read()
    return len(content), len(gzip.compress(content, compresslevel=9))


def sparsity(model):
    """Fraction of exactly-zero values among the trainable weights (kernels and biases)."""
    values = [np.asarray(w) for w in model.trainable_weights]
    total = sum(v.size for v in values)
    return float(sum(int(np.count_nonzero(v == 0)) for v in values) / total) if total else 0.0


def _pad(batch, size):
    if len(batch) == size:
        return batch
    reps = -(-size // len(batch))
    return np.concatenate([batch] * reps)[:size]


def _quantize(x, detail):
    dtype = detail["dtype"]
    if dtype in (np.float32, np.dtype("float32")):
        return x.astype(np.float32, copy=False)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y, detail):
    if np.issubdtype(y.dtype, np.integer):
        scale, zero_point = detail["quantization"]
        return (y.astype(np.float32) - zero_point) * scale
    return y.astype(np.float32, copy=False)


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
