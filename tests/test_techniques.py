"""Each technique's effect, not only that it runs.

Recipes that set process-wide state (logical devices, thread pools, dtype policies) run as
`python -m runners run` children, all started together in one module fixture.  Techniques
whose effects are independent share a recipe to keep the suite short on two cores.
"""

import numpy as np
import pytest
from engine_runs import HAS_JAX, digits_spec, started_runs

from runners.engine import advisor, techniques

TINY_BENCHMARK = {"trials": 2, "latency_samples": 5, "warmup": 2}


def spec(step_list, arch="seed_mlp", epochs=2, params=None):
    made = digits_spec(step_list, arch=arch, params=params)
    made["training"]["epochs"] = epochs
    made["benchmark"] = TINY_BENCHMARK
    return made


RECIPES = {
    "baseline": ({}, spec([])),
    "data_parallel": ({}, spec([{"technique": "data_parallel", "replicas": 2}])),
    "model_parallel": ({}, spec([{"technique": "model_parallel", "devices": 2}], "seed_cnn")),
    "threads_and_keras_quantize": ({}, spec([
        {"technique": "op_parallelism", "intra_op_threads": 1, "inter_op_threads": 2},
        {"technique": "keras_quantize", "mode": "int8"}], params={"units": 256})),
    "pipeline_and_early_stop": ({}, spec([
        {"technique": "input_pipeline", "shuffle_buffer": 500},
        {"technique": "early_stop", "target_val_accuracy": 0.8}], epochs=40)),
    "sgd_warmup_cosine": ({}, spec([
        {"technique": "optimizer", "name": "sgd", "momentum": 0.9},
        {"technique": "lr_schedule", "kind": "warmup_cosine", "warmup_epochs": 1}], epochs=3)),
    "batch_norm_large_batch": ({}, spec([
        {"technique": "batch_norm"}, {"technique": "large_batch", "factor": 2}])),
    "regularization": ({}, spec([{"technique": "regularization", "l2": 0.01,
                                  "dropout": 0.5}])),
    "ptq_float16": ({}, spec([{"technique": "ptq", "mode": "float16"}],
                             params={"units": 512})),
    "ptq_full_int8": ({}, spec([{"technique": "ptq", "mode": "full_int8"}], "seed_cnn")),
    "steps_per_execution": ({}, spec([{"technique": "steps_per_execution", "steps": 8}])),
}
if HAS_JAX:
    RECIPES["jax_data_parallel"] = ({"KERAS_BACKEND": "jax"},
                                    spec([{"technique": "data_parallel"}]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with started_runs(RECIPES, tmp_path_factory.mktemp("techniques")) as started:
        yield started


def losses(events):
    return [e["loss"] for e in events if e["event"] == "epoch"]


def test_it_trains_on_two_replicas_with_the_loss_of_one(runs):
    events, result = runs["data_parallel"].succeeded()
    base_events, _ = runs["baseline"].succeeded()
    assert result["replicas"] == 2
    assert result["replica_devices"] == ["/cpu:0", "/cpu:1"]
    assert result["global_batch"] == 64 and result["per_replica_batch"] == 32
    # The global batch is split, so the gradient is the one-replica gradient: same seed, same
    # losses up to summation order (shuffling differs: tf.data here, Keras arrays there).
    assert losses(events) == pytest.approx(losses(base_events), rel=0.02)
    assert result["one_replica_train_samples_per_s"] > 0
    assert result["scaling_efficiency"] == pytest.approx(
        result["train_samples_per_s"] / (2 * result["one_replica_train_samples_per_s"]))
    assert result["test_accuracy"] > 0.4


def test_it_places_layer_groups_on_two_devices(runs):
    _, result = runs["model_parallel"].succeeded()
    variables = result["variable_devices"]
    # Balanced by parameters: the convolutions and the big Dense on one device, the logits on
    # the other; every layer's variables sit on the device its group was given.
    assert set(variables) == {"conv2d", "conv2d_1", "dense", "logits"}
    for layer, devices in variables.items():
        assert devices == [result["placement"][layer]]
    assert {d[0] for d in variables.values()} == {"/cpu:0", "/cpu:1"}
    assert result["op_devices"]["/cpu:0"] > 0 and result["op_devices"]["/cpu:1"] > 0
    assert result["test_accuracy"] > 0.5


def test_it_applies_the_thread_pools_and_quantizes_dense_layers(runs):
    _, result = runs["threads_and_keras_quantize"].succeeded()
    assert result["intra_op_threads"] == 1 and result["inter_op_threads"] == 2
    assert result["quantized_layers"] == {"Dense": 3}
    assert result["runtime"] == "keras" and result["reference"] is not None
    # int8 kernels: the file shrinks well below the float32 model of the same weights.
    assert result["reference"]["model_bytes"] > 2.5 * result["model_bytes"]
    assert abs(result["test_accuracy"] - result["reference"]["test_accuracy"]) < 0.05
    assert any("only Dense/EinsumDense/Embedding" in n for n in result["notes"])


def test_it_feeds_tf_data_and_stops_at_the_target_accuracy(runs):
    events, result = runs["pipeline_and_early_stop"].succeeded()
    assert result["fit_input"].endswith("Dataset")
    assert result["input_pipeline"] == ["from_tensor_slices", "cache", "shuffle(500)",
                                        "map(parallel AUTOTUNE)", "batch(64)",
                                        "prefetch(AUTOTUNE)"]
    accuracies = [e["val_accuracy"] for e in events if e["event"] == "epoch"]
    assert result["epochs_run"] == len(accuracies) < 40
    # It stopped at the first epoch that reached the target, and no earlier.
    assert accuracies[-1] >= 0.8 and all(a < 0.8 for a in accuracies[:-1])
    assert result["time_to_accuracy_epoch"] == len(accuracies)
    epoch_seconds = sum(e["seconds"] for e in events if e["event"] == "epoch")
    assert 0.5 * epoch_seconds < result["time_to_accuracy_seconds"] <= result["train_seconds"]


def test_it_warms_up_then_decays_the_learning_rate_with_sgd(runs):
    _, result = runs["sgd_warmup_cosine"].succeeded()
    assert result["optimizer"] == "SGD"
    first, peak, last = result["learning_rates"]
    assert first == 0.0 and peak == pytest.approx(0.001)
    assert 0 < last < peak


def test_it_inserts_batch_norm_and_scales_batch_and_rate(runs):
    events, result = runs["batch_norm_large_batch"].succeeded()
    _, base = runs["baseline"].succeeded()
    assert result["batch_norm_layers"] == 2
    # gamma, beta, moving mean and variance for each of the two 64-unit hidden layers.
    assert result["params"] == base["params"] + 2 * 4 * 64
    assert result["batch_size"] == 128 and result["learning_rate"] == pytest.approx(0.002)
    assert {e["steps"] for e in events if e["event"] == "epoch"} == {11}  # ceil(1293 / 128)


def test_it_adds_the_l2_penalty_to_the_loss(runs):
    events, result = runs["regularization"].succeeded()
    base_events, _ = runs["baseline"].succeeded()
    assert result["l2_layers"] == 3 and result["dropout_layers"] == 2
    assert losses(events)[0] > losses(base_events)[0] + 0.5


def test_it_halves_the_file_with_float16(runs):
    _, result = runs["ptq_float16"].succeeded()
    ratio = result["reference"]["model_bytes"] / result["model_bytes"]
    assert 1.7 <= ratio <= 2.3, ratio


def test_it_gives_full_int8_int8_input_and_output_tensors(runs):
    from ai_edge_litert.interpreter import Interpreter

    _, result = runs["ptq_full_int8"].succeeded()
    interpreter = Interpreter(
        model_path=str(runs["ptq_full_int8"].artifacts / "model_full_int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert abs(result["test_accuracy"] - result["reference"]["test_accuracy"]) < 0.1


def test_it_runs_eight_batches_per_call_of_the_train_function(runs):
    events, result = runs["steps_per_execution"].succeeded()
    base_events, _ = runs["baseline"].succeeded()
    assert result["steps_per_execution"] == 8
    assert result["steps_applied"] == ["steps_per_execution"]
    # Callbacks run once per call: 21 batches of 64 (1293 samples) are 3 calls, not 21.
    assert {e["steps"] for e in base_events if e["event"] == "epoch"} == {21}
    assert {e["steps"] for e in events if e["event"] == "epoch"} == {3}
    # The same batches and updates, only fewer calls: the losses are the baseline's.
    assert losses(events) == pytest.approx(losses(base_events), rel=0.02)
    plain_cpu = {"hardware": "cpu", "cpu_flags": ["avx2"]}
    assert advisor.advise(["steps_per_execution"], plain_cpu, params=9_000) == []
    [advice] = advisor.advise(["steps_per_execution"], plain_cpu, params=2_000_000)
    assert "2,000,000 parameters" in advice["message"]


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed in this environment")
def test_it_says_data_parallel_needs_tensorflow_under_jax(runs):
    returncode, events, _ = runs["jax_data_parallel"].wait()
    assert returncode == 1
    assert events[-1]["event"] == "error"
    assert events[-1]["message"] == ("data_parallel needs the TensorFlow backend "
                                     "(KERAS_BACKEND=tensorflow); this run uses jax")
    assert not any(e.get("phase") == "train" for e in events)


@pytest.mark.parametrize("policy,dtype", [("mixed_float16", "float16"),
                                          ("mixed_bfloat16", "bfloat16")])
def test_it_computes_mixed_precision_layers_in_16_bits(policy, dtype):
    import keras

    from runners.engine import zoo

    step = techniques.TECHNIQUES["mixed_precision"](policy=policy)
    try:
        step.configure(type("Ctx", (), {"backend": keras.backend.backend()})())
        model = zoo.build_model({"arch": "seed_cnn"}, [8, 8, 1], 10)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    hidden = [layer for layer in model.layers if layer.weights and layer.name != "logits"]
    assert hidden and all(layer.compute_dtype == dtype for layer in hidden)
    assert all(w.dtype == "float32" for w in model.weights)
    assert model.output.dtype == "float32"
    out = model(np.zeros((2, 8, 8, 1), dtype=np.float32))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_it_validates_technique_parameters():
    assert techniques.validate_step({"technique": "data_parallel"}) == {
        "technique": "data_parallel", "replicas": None, "devices": None}
    for bad, message in [
        ({"technique": "data_parallel", "replicas": 0},
         "The data_parallel replicas must be between 1 and 64"),
        ({"technique": "data_parallel", "replicas": 3, "devices": ["/gpu:0"]}, "must equal"),
        ({"technique": "data_parallel", "devices": ["/gpu:0", ""]}, "name cannot be empty"),
        ({"technique": "model_parallel", "devices": 1},
         "The model_parallel devices must be between 2 and 16"),
        ({"technique": "op_parallelism", "intra_op_threads": -1},
         "The op_parallelism intra_op_threads must be between 0 and 256"),
        ({"technique": "input_pipeline", "cache": "yes"},
         "The input_pipeline cache must be true or false"),
        ({"technique": "keras_quantize", "mode": "int2"},
         "The keras_quantize mode must be one of int8, int4, float8"),
        ({"technique": "optimizer", "name": "adagrad"}, "The optimizer name must be one of"),
        ({"technique": "lr_schedule", "factor": 1.5},
         "The lr_schedule factor must be above 0 and at most 0.999"),
        ({"technique": "large_batch", "factor": 1},
         "The large_batch factor must be between 2 and 1,024"),
        ({"technique": "early_stop", "target_val_accuracy": 1.5},
         "The early_stop target_val_accuracy must be above 0 and at most 1"),
        ({"technique": "early_stop", "target_val_accuracy": None}, "needs target"),
        ({"technique": "regularization", "dropout": 1.0},
         "The regularization dropout must be between 0 and 0.95"),
    ]:
        with pytest.raises(ValueError, match=message):
            techniques.validate_step(bad)


def test_it_advises_against_techniques_this_hardware_lacks():
    plain_cpu = {"cpu_flags": ["avx2", "fma"], "gpus": []}
    modern = {"cpu_flags": ["avx512_vnni", "avx512_bf16", "avx512_fp16"], "gpus": []}
    recipe = [{"technique": "mixed_precision", "policy": "mixed_bfloat16"},
              {"technique": "xla"}, {"technique": "ptq", "mode": "dynamic_int8"},
              {"technique": "ptq", "mode": "float16"}]
    advice = advisor.advise(recipe, plain_cpu, params=9000)
    assert [a["technique"] for a in advice] == ["mixed_precision", "xla", "ptq"]
    assert "avx512_bf16" in advice[0]["message"] and "9,000" in advice[1]["message"]
    assert [a["technique"] for a in advisor.advise(recipe, modern, params=9000)] == ["xla"]
    assert advisor.advise(recipe, modern, params=5_000_000) == []
    assert advisor.advise(recipe, {**plain_cpu, "hardware": "gpu"}) == []
    assert isinstance(advisor.advise(["xla"], "cpu", params=10), list)


@pytest.mark.parametrize("step, message", [
    ({"technique": "pruning", "begin_step": float("inf")}, "pruning begin_step must be an integer"),
    ({"technique": "clustering", "fine_tune_epochs": float("nan")}, "must be an integer"),
    ({"technique": "qat", "fine_tune_epochs": 1e999}, "must be an integer"),
    ({"technique": "lr_schedule", "factor": float("nan")}, "lr_schedule factor must be a number"),
    ({"technique": "pruning", "power": float("-inf")}, "pruning power must be a number"),
])
def test_it_refuses_numbers_that_are_not_finite(step, message):
    with pytest.raises(ValueError, match=message):
        techniques.validate_step(step)
