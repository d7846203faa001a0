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
    from runners.engine import data, run, techniques, zoo

    keras.utils.set_random_seed(0)
    dataset = data.load({"name": "digits"}, seed=0)
    model = zoo.build_model({"arch": "seed_mlp", "params": {}}, dataset.input_shape, 10)
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=False)
    model.fit(dataset.x_train, dataset.y_train, epochs=3, verbose=0)
    ctx = run.RunContext(spec={}, backend="tensorflow", data=dataset, workdir=str(tmp_path),
                         model=model)
    step = techniques.TECHNIQUES["ptq"](mode="full_int8", representative_samples=50)
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
    from runners.engine import data, run, techniques, zoo

    dataset = data.load({"name": "digits"}, seed=0)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = zoo.build_model({"arch": "seed_cnn", "params": {}}, dataset.input_shape, 10)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    ctx = run.RunContext(spec={}, backend="tensorflow", data=dataset, workdir=str(tmp_path),
                         model=model)
    # TFLite has no float16 Conv2D builtin: converting the mixed model itself fails.
    techniques.TECHNIQUES["ptq"](mode="dynamic_int8").after_train(ctx)
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


def synthetic_benchmarks(count, *, executions, rounds=20, ratio=1.25, between=0.05,
                         within=0.03, seed=0):
    """Paired latency ratios as a benchmark would record them: each execution (process)
    shifts the ratio by its own log-normal effect (sd `between`), each round adds noise."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        shift = rng.normal(0.0, between, size=(executions, 1))
        noise = rng.normal(0.0, within, size=(executions, rounds))
        yield np.exp(np.log(ratio) + shift + noise)


def coverage(method, *, executions, count=300, ratio=1.25):
    hits = 0
    for groups in synthetic_benchmarks(count, executions=executions, ratio=ratio):
        _, (low, high), _ = measure.paired_speedup(groups, method=method, resamples=400)
        hits += low <= ratio <= high
    return hits / count


def test_it_gives_a_paired_speedup_and_its_interval():
    groups = [[2.0 * f] * 5 for f in (0.98, 1.0, 1.02, 0.99, 1.01)]

    speedup, (low, high), method = measure.paired_speedup(groups)

    assert low < speedup < high and 1.9 < low and high < 2.1
    assert speedup == pytest.approx(2.0, abs=0.001)
    assert method == "Student t over 5 units"
    # One unit: a figure, but nothing to say how far another process would put it.
    assert measure.paired_speedup([[2.0, 2.1]])[1:] == (None, "one unit: no interval")
    assert measure.paired_speedup([])[0] is None


def test_it_covers_the_true_ratio_with_a_hierarchical_bootstrap_over_many_executions():
    # The variation between processes is in the interval: with 20 executions a two-level
    # bootstrap covers the true ratio about as often as it says.
    assert coverage("bootstrap", executions=20) >= 0.9


def test_it_stays_honest_with_few_executions_where_the_bootstrap_undercovers():
    # With 5 executions the bootstrap's interval is too narrow (it cannot know how far
    # apart five processes may land); Student t on the executions' log-ratios is not.
    t, bootstrap = coverage("t", executions=5), coverage("bootstrap", executions=5)
    assert t >= 0.92
    assert bootstrap < t
    # The default picks t below T_INTERVAL_BELOW executions, the bootstrap from there.
    groups = next(synthetic_benchmarks(1, executions=5))
    assert measure.paired_speedup(groups)[2].startswith("Student t")
    groups = next(synthetic_benchmarks(1, executions=measure.T_INTERVAL_BELOW))
    assert measure.paired_speedup(groups)[2].startswith("hierarchical bootstrap")


def test_it_finds_no_difference_in_an_a_a_series_and_a_real_one_in_another():
    aa = next(synthetic_benchmarks(1, executions=5, ratio=1.0, seed=3))
    slower = next(synthetic_benchmarks(1, executions=5, ratio=0.8, seed=3))

    assert measure.paired_speedup(aa)[1][0] <= 1.0 <= measure.paired_speedup(aa)[1][1]
    assert measure.paired_speedup(slower)[1][1] < 1.0


def test_it_reports_inference_throughput_trials_and_ci():
    figures = measure.throughput(Echo(), np.ones((10, 3), dtype=np.float32), batch_size=4,
                                 trials=3, warmup=0)
    assert len(figures["inference_samples_per_s_trials"]) == 3
    low, high = figures["inference_samples_per_s_ci95"]
    assert low <= figures["inference_samples_per_s"] <= high
