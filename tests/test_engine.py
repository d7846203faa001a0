"""The engine end to end: `python -m runners run SPEC.json` in a child process, as workers do.

The recipe runs start together in one module fixture and are awaited by the tests that read
them; they are independent processes, so overlapping them only saves wall time.
"""

import json
import signal
import time

import pytest
from engine_runs import BENCHMARK, HAS_JAX, RUN_TIMEOUT, EngineRun, digits_spec, started_runs

RESULT_KEYS = {
    "test_accuracy", "train_seconds", "compile_seconds", "train_samples_per_s",
    "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "latency_ms_ci95", "latency_samples",
    "inference_samples_per_s", "model_bytes", "model_gzip_bytes", "params", "sparsity",
    "runtime", "fingerprint", "steps_applied", "notes", "backend", "epochs_run", "reference",
    "artifacts", "train_samples_per_s_ci95", "train_samples_per_s_epochs",
    "inference_samples_per_s_ci95", "inference_samples_per_s_trials", "advice", "training",
}
REFERENCE_KEYS = {
    "test_accuracy", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "latency_ms_ci95",
    "latency_samples", "inference_samples_per_s", "model_bytes", "model_gzip_bytes",
}
FINGERPRINT_KEYS = {
    "cpu_model", "logical_cores", "cpu_flags", "gpus", "python", "tensorflow", "keras",
    "backend", "jax", "platform", "cuda", "cudnn",
}


# Big enough that the flatbuffer overhead does not hide int8's 4x (units 256 gives only 3.57x).
PTQ_SPEC = digits_spec([{"technique": "ptq", "mode": "dynamic_int8"}], params={"units": 512})
RECIPES = {
    "baseline": ({}, digits_spec([], arch="seed_cnn")),
    "mixed_precision": ({}, digits_spec([{"technique": "mixed_precision"}])),
    "xla": ({}, digits_spec([{"technique": "xla"}])),
    "ptq": ({}, PTQ_SPEC),
}
if HAS_JAX:
    RECIPES["jax_xla"] = ({"KERAS_BACKEND": "jax"}, digits_spec([{"technique": "xla"}]))
    RECIPES["jax_ptq"] = ({"KERAS_BACKEND": "jax"}, PTQ_SPEC)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with started_runs(RECIPES, tmp_path_factory.mktemp("engine")) as started:
        yield started


def phases(events):
    return [e["phase"] for e in events if e["event"] == "phase"]


def check_result_shape(result):
    assert RESULT_KEYS <= set(result)
    assert FINGERPRINT_KEYS <= set(result["fingerprint"])
    assert 0.5 < result["test_accuracy"] <= 1.0
    assert result["epochs_run"] == 2
    assert result["train_seconds"] > 0 and result["train_samples_per_s"] > 0
    assert result["compile_seconds"] >= 0
    low, high = result["latency_ms_ci95"]
    assert low <= result["latency_ms_p50"] <= high
    assert result["latency_ms_p50"] <= result["latency_ms_p95"] <= result["latency_ms_p99"]
    assert len(result["latency_samples"]) == BENCHMARK["trials"]
    assert result["inference_samples_per_s"] > 0
    low, high = result["inference_samples_per_s_ci95"]
    assert low <= result["inference_samples_per_s"] <= high
    assert len(result["inference_samples_per_s_trials"]) == BENCHMARK["trials"]
    # Two epochs: the first carries warm-up, so one steady epoch and no interval yet.
    assert result["train_samples_per_s_epochs"] == [result["train_samples_per_s"]]
    assert 0 < result["model_gzip_bytes"] <= result["model_bytes"] * 1.01
    assert 0 <= result["sparsity"] < 0.1
    assert any("compile_seconds" in note for note in result["notes"])


def test_it_streams_the_baseline_in_order(runs):
    events, result = runs["baseline"].succeeded()
    kinds = [e["event"] for e in events]
    assert kinds == ["phase", "phase", "start", "phase", "epoch", "epoch", "phase", "phase",
                     "result"]
    assert phases(events) == ["load_data", "build", "train", "evaluate", "benchmark"]
    start = events[2]
    assert start["epochs"] == 2 and start["train_samples"] == 1293
    assert start["params"] == result["params"] > 0
    for number, epoch in enumerate((e for e in events if e["event"] == "epoch"), start=1):
        assert epoch["epoch"] == number
        assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(epoch)
        assert epoch["steps"] == 21  # ceil(1293 / 64)
        assert epoch["seconds"] > 0
    check_result_shape(result)
    assert result["runtime"] == "keras" and result["reference"] is None
    assert result["steps_applied"] == [] and result["backend"] == "tensorflow"
    assert result["fingerprint"]["tensorflow"] and result["fingerprint"]["jax"] is None
    # Keras's jit_compile="auto" would turn XLA on for the baseline under JAX or on a GPU.
    assert ("keras runtime latency via concrete tf.function of model(x, training=False), "
            "jit_compile=False") in result["notes"]
    assert result["artifacts"] == ["model.keras"]
    model_file = runs["baseline"].artifacts / "model.keras"
    # No optimizer state in the shipped file: it would triple its size.
    assert result["model_bytes"] == model_file.stat().st_size < 4 * result["params"] * 1.5


def test_it_trains_in_mixed_float16_with_loss_scaling(runs):
    events, result = runs["mixed_precision"].succeeded()
    check_result_shape(result)
    assert result["steps_applied"] == ["mixed_precision"]
    assert any("LossScaleOptimizer" in note for note in result["notes"])


def test_it_jit_compiles_for_xla(runs):
    events, result = runs["xla"].succeeded()
    check_result_shape(result)
    assert result["steps_applied"] == ["xla"]
    assert ("keras runtime latency via concrete tf.function of model(x, training=False), "
            "jit_compile=True") in result["notes"]


def test_it_quantizes_to_int8_and_measures_the_float32_tflite_reference(runs):
    events, result = runs["ptq"].succeeded()
    assert phases(events) == ["load_data", "build", "train", "convert", "evaluate",
                              "benchmark"]
    check_result_shape(result)
    assert result["runtime"] == "tflite" and result["steps_applied"] == ["ptq"]
    reference = result["reference"]
    assert REFERENCE_KEYS <= set(reference)
    assert abs(result["test_accuracy"] - reference["test_accuracy"]) < 0.05
    assert set(result["artifacts"]) == {
        "model.keras", "model_float32.tflite", "model_dynamic_int8.tflite"}
    artifacts = runs["ptq"].artifacts
    int8_bytes = (artifacts / "model_dynamic_int8.tflite").stat().st_size
    float_bytes = (artifacts / "model_float32.tflite").stat().st_size
    assert result["model_bytes"] == int8_bytes
    assert reference["model_bytes"] == float_bytes
    assert float_bytes >= 3.5 * int8_bytes, (float_bytes, int8_bytes)
    assert result["fingerprint"]["litert"]


def test_it_reports_an_unknown_technique_as_an_error(tmp_path):
    run = EngineRun(digits_spec([{"technique": "warp_drive"}]), tmp_path)
    returncode, events, _ = run.wait()
    assert returncode == 1
    assert [e["event"] for e in events] == ["error"]
    assert "Unknown technique 'warp_drive'" in events[0]["message"]


def test_it_stops_at_the_next_batch_on_sigterm(tmp_path):
    spec = digits_spec([], arch="seed_cnn")
    spec["dataset"] = {"name": "synthetic", "samples": 2000, "shape": [16, 16, 3]}
    spec["training"]["epochs"] = 500
    run = EngineRun(spec, tmp_path)
    seen = []
    for line in run.proc.stdout:
        seen.append(json.loads(line))
        if seen[-1]["event"] in ("epoch", "error", "result"):
            break
    assert seen[-1]["event"] == "epoch", seen[-1]
    run.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    rest = [json.loads(line) for line in run.proc.stdout]
    run.proc.wait(timeout=RUN_TIMEOUT)
    # The worker kills a child that has not stopped 10 s after SIGTERM.
    assert time.monotonic() - signalled < 10
    assert run.proc.returncode == 0, run.stderr()
    assert rest[-1] == {"event": "cancelled"}
    assert not any(e["event"] in ("result", "error") for e in rest)
    assert {"phase": "evaluate", "event": "phase"} not in rest


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed in this environment")
def test_it_runs_under_jax(runs):
    events, result = runs["jax_xla"].succeeded()
    check_result_shape(result)
    assert result["backend"] == "jax"
    assert result["fingerprint"]["jax"] and result["fingerprint"]["tensorflow"] is None
    assert ("keras runtime latency via jax.jit of model.stateless_call(training=False), "
            "jit_compile=True") in result["notes"]


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed in this environment")
def test_it_says_ptq_needs_tensorflow_under_jax(runs):
    returncode, events, _ = runs["jax_ptq"].wait()
    assert returncode == 1
    assert events[-1] == {
        "event": "error",
        "message": "ptq needs the TensorFlow backend (KERAS_BACKEND=tensorflow); this run uses jax",
    }
    assert "train" not in phases(events)
