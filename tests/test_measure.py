"""Measurement: statistics, accuracy with padded batches, and int8 TFLite input/output."""

import numpy as np
import pytest

from runners.engine import measure


def test_it_summarizes_latency_percentiles_and_trial_medians():
    per_trial = np.arange(1, 101, dtype=float).reshape(4, 25)
    summary = measure.summarize_latency(per_trial)
    assert summary["latency_ms_p50"] == pytest.approx(50.5)
    assert summary["latency_ms_p95"] == pytest.approx(95.05)
    assert summary["latency_ms_p99"] == pytest.approx(99.01)
    assert summary["latency_samples"] == [13.0, 38.0, 63.0, 88.0]


def test_it_bootstraps_a_ci_around_the_median_deterministically():
    rng = np.random.default_rng(3)
    trials = rng.lognormal(mean=0.0, sigma=0.3, size=(5, 50))
    ci = measure.bootstrap_median_ci(trials, seed=7)
    assert ci[0] < np.median(trials) < ci[1]
    assert measure.bootstrap_median_ci(trials, seed=7) == ci
    assert measure.bootstrap_median_ci(trials, seed=8) != ci


def test_it_widens_the_ci_when_trials_disagree():
    # Same calls, but trial-to-trial shifts: resampling trials must show that uncertainty.
    rng = np.random.default_rng(0)
    calls = rng.normal(1.0, 0.01, size=(6, 40))
    shifted = calls + np.array([0.0, 0.2, -0.2, 0.1, -0.1, 0.3])[:, None]
    steady = measure.bootstrap_median_ci(calls)
    noisy = measure.bootstrap_median_ci(shifted)
    assert noisy[1] - noisy[0] > 5 * (steady[1] - steady[0])


def test_it_bootstraps_a_single_trial():
    low, high = measure.bootstrap_median_ci(np.arange(1.0, 42.0))
    assert low < 21.0 < high


class Echo:
    """A runtime whose probabilities are its inputs, so accuracy is known in advance."""

    def __init__(self):
        self.batch_sizes = set()

    def predict(self, x):
        self.batch_sizes.add(len(x))
        return x


def test_it_pads_the_last_batch_for_accuracy():
    y = np.array([0, 1, 2, 1, 0, 2, 2])
    x = np.eye(3, dtype=np.float32)[y]
    x[-1] = [1, 0, 0]  # one wrong answer
    runtime = Echo()
    assert measure.accuracy(runtime, x, y, batch_size=3) == pytest.approx(6 / 7)
    assert runtime.batch_sizes == {3}


def test_it_times_batch_one_calls():
    runtime = Echo()
    figures = measure.latency(runtime, np.zeros((5, 3), np.float32), trials=3, samples=8,
                              warmup=2)
    assert runtime.batch_sizes == {1}
    assert len(figures["latency_samples"]) == 3
    assert 0 <= figures["latency_ms_p50"] <= figures["latency_ms_p95"] <= figures["latency_ms_p99"]
    assert measure.throughput(runtime, np.zeros((5, 3), np.float32), batch_size=4, trials=2,
                              warmup=0)["inference_samples_per_s"] > 0


def test_it_feeds_full_int8_tflite_models_quantized_inputs(tmp_path):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TFLite conversion needs the TensorFlow backend")
    from runners.engine import data, run, steps, zoo

    keras.utils.set_random_seed(0)
    dataset = data.load({"name": "digits"}, seed=0)
    model = zoo.build_model({"arch": "seed_mlp", "params": {}}, dataset.input_shape, 10)
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=False)
    model.fit(dataset.x_train, dataset.y_train, epochs=3, verbose=0)
    ctx = run.RunContext(spec={}, backend="tensorflow", data=dataset, workdir=str(tmp_path),
                         model=model)
    step = steps.TECHNIQUES["ptq"](mode="full_int8", representative_samples=50)
    step.after_train(ctx)

    assert ctx.artifacts == ["model_float32.tflite", "model_full_int8.tflite"]
    assert ctx.runtime._input["dtype"] == np.int8
    assert ctx.runtime._output["dtype"] == np.int8
    probs = ctx.runtime.predict(dataset.x_test[:64])
    assert probs.dtype == np.float32 and probs.shape == (64, 10)
    agree = np.argmax(probs, -1) == np.argmax(model.predict_on_batch(dataset.x_test[:64]), -1)
    assert agree.mean() > 0.9
    assert "full_int8 calibrated on 50 training samples" in " ".join(ctx.notes)


def test_it_converts_a_mixed_precision_model_through_a_float32_copy(tmp_path):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TFLite conversion needs the TensorFlow backend")
    from runners.engine import data, run, steps, zoo

    dataset = data.load({"name": "digits"}, seed=0)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = zoo.build_model({"arch": "seed_cnn", "params": {}}, dataset.input_shape, 10)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    ctx = run.RunContext(spec={}, backend="tensorflow", data=dataset, workdir=str(tmp_path),
                         model=model)
    # TFLite has no float16 Conv2D builtin: converting the mixed model itself fails.
    steps.TECHNIQUES["ptq"](mode="dynamic_int8").after_train(ctx)
    assert any("float32 copy" in note for note in ctx.notes)
    expected = model.predict_on_batch(dataset.x_test[:8])
    assert np.allclose(ctx.reference.predict(dataset.x_test[:8]), expected, atol=0.01)


def test_it_reports_train_throughput_after_the_first_epoch_with_a_ci():
    epochs = [{"train_seconds": t} for t in (5.0, 1.0, 2.0, 1.0, 1.0)]
    figures = measure.train_throughput(epochs, samples=100)
    assert figures["train_samples_per_s_epochs"] == [100.0, 50.0, 100.0, 100.0]
    assert figures["train_samples_per_s"] == 100.0
    low, high = figures["train_samples_per_s_ci95"]
    assert 50.0 <= low <= 100.0 == high


def test_it_uses_the_only_epoch_when_there_is_one():
    figures = measure.train_throughput([{"train_seconds": 2.0}], samples=100)
    assert figures["train_samples_per_s"] == 50.0
    assert figures["train_samples_per_s_ci95"] is None


def test_it_bootstraps_a_speedup_interval():
    rng = np.random.default_rng(1)
    slow = rng.normal(2.0, 0.05, size=8)
    fast = rng.normal(1.0, 0.05, size=8)
    speedup, (low, high) = measure.speedup_ci(slow, fast)
    assert low < speedup < high and 1.8 < low and high < 2.2
    same, (low, high) = measure.speedup_ci(slow, rng.permutation(slow))
    assert same == 1.0 and low < 1.0 < high


def test_it_reports_inference_throughput_trials_and_ci():
    figures = measure.throughput(Echo(), np.ones((10, 3), dtype=np.float32), batch_size=4,
                                 trials=3, warmup=0)
    assert len(figures["inference_samples_per_s_trials"]) == 3
    low, high = figures["inference_samples_per_s_ci95"]
    assert low <= figures["inference_samples_per_s"] <= high
