"""Pruning, clustering and qat: their effects on the shipped artifact, end to end.

The engine runs start together in one module fixture (independent processes; overlapping
them saves wall time) and are awaited by the tests that read them.  The masks and k-means
are also checked directly, in-process, on numpy arrays.
"""

import importlib.util
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from engine_runs import ROOT, EngineRun, digits_spec, started_runs

from runners.engine.techniques import compression, validate_step

HAS_JAX = importlib.util.find_spec("jax") is not None
EPOCHS = 3
# Wide enough that kernels, not the .keras file's fixed overhead, dominate its gzip size.
MLP = {"units": 128}


def spec(steps, epochs=EPOCHS, params=MLP):
    made = digits_spec(steps, params=params)
    made["training"]["epochs"] = epochs
    return made


RUNS = {
    "baseline": ({}, spec([])),
    "pruning": ({}, spec([{"technique": "pruning", "target_sparsity": 0.8}])),
    "pruning_2_4": ({}, spec([{"technique": "pruning", "structure": "2:4"}])),
    "clustering": ({}, spec([{"technique": "clustering", "clusters": 8, "fine_tune_epochs": 1}])),
    "qat": ({}, spec([{"technique": "qat"}])),
}
if HAS_JAX:
    RUNS["jax_pruning"] = ({"KERAS_BACKEND": "jax"}, spec([{"technique": "pruning"}]))
    RUNS["jax_qat"] = ({"KERAS_BACKEND": "jax"}, spec([{"technique": "qat"}]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with started_runs(RUNS, tmp_path_factory.mktemp("compression")) as started:
        yield started


def kernels(keras_file):
    """Kernels of the saved model, read from the .keras file's weights (no framework needed)."""
    import h5py

    found = {}
    with zipfile.ZipFile(keras_file) as archive, archive.open("model.weights.h5") as f:
        with h5py.File(f, "r") as weights:
            def visit(name, node):
                # Dense and Conv layers store (kernel, bias) as vars/0 and vars/1.
                if isinstance(node, h5py.Dataset) and name.endswith("vars/0") and node.ndim >= 2:
                    found[name] = node[()]
            weights.visititems(visit)
    return found


def test_it_prunes_to_the_target_sparsity_and_compresses(runs):
    _, baseline = runs["baseline"].succeeded()
    _, result = runs["pruning"].succeeded()
    assert result["target_sparsity"] == 0.8 and result["structure"] == "unstructured"
    assert abs(result["kernel_sparsity"] - 0.8) <= 0.01, result["kernel_sparsity"]
    saved = kernels(runs["pruning"].artifacts / "model.keras")
    assert len(saved) == 3
    zeros = sum(int(np.count_nonzero(k == 0)) for k in saved.values())
    assert abs(zeros / sum(k.size for k in saved.values()) - 0.8) <= 0.01
    # The shipped file is plain (no wrappers), so sparse kernels are what gzip sees.
    assert baseline["model_gzip_bytes"] >= 2.5 * result["model_gzip_bytes"], (
        baseline["model_gzip_bytes"], result["model_gzip_bytes"])
    assert result["test_accuracy"] > 0.5


def test_it_keeps_at_most_two_of_every_four_input_weights(runs):
    _, result = runs["pruning_2_4"].succeeded()
    assert result["structure"] == "2:4" and result["target_sparsity"] == 0.5
    assert abs(result["kernel_sparsity"] - 0.5) <= 0.01
    for name, kernel in kernels(runs["pruning_2_4"].artifacts / "model.keras").items():
        # Groups of 4 run along the input axis (the second last).
        groups = np.moveaxis(kernel, -2, -1).reshape(-1, 4)
        assert np.count_nonzero(groups, axis=1).max() <= 2, name
    assert result["test_accuracy"] > 0.5


def test_it_clusters_each_kernel_to_k_values(runs):
    _, baseline = runs["baseline"].succeeded()
    _, result = runs["clustering"].succeeded()
    assert result["epochs_run"] == EPOCHS + 1
    assert result["clusters"] == 8
    assert set(result["unique_values_per_kernel"]) == {"dense", "dense_1", "logits"}
    saved = kernels(runs["clustering"].artifacts / "model.keras")
    assert len(saved) == 3
    for name, kernel in saved.items():
        assert len(np.unique(kernel)) <= 8, name
    assert result["model_gzip_bytes"] < baseline["model_gzip_bytes"] / 2
    assert result["test_accuracy"] > baseline["test_accuracy"] - 0.1


def test_it_trains_with_fake_quant_and_ships_int8_tflite(runs):
    _, baseline = runs["baseline"].succeeded()
    _, result = runs["qat"].succeeded()
    assert result["runtime"] == "tflite"
    assert set(result["quantized_layers"]) == {"dense", "dense_1", "logits"}
    assert {"model_float32.tflite", "model_full_int8.tflite"} <= set(result["artifacts"])
    from ai_edge_litert.interpreter import Interpreter

    quantized = Interpreter(model_path=str(runs["qat"].artifacts / "model_full_int8.tflite"))
    weights = [t for t in quantized.get_tensor_details() if len(t["shape"]) == 2
               and t["shape"][0] > 1]
    assert weights and all(t["dtype"] == np.int8 for t in weights)
    reference = result["reference"]
    assert reference["model_bytes"] > 2.5 * result["model_bytes"]
    assert abs(result["test_accuracy"] - reference["test_accuracy"]) <= 0.03
    assert result["test_accuracy"] >= baseline["test_accuracy"] - 0.05


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed in this environment")
def test_it_prunes_under_jax(runs):
    _, result = runs["jax_pruning"].succeeded()
    assert result["backend"] == "jax"
    assert abs(result["kernel_sparsity"] - 0.8) <= 0.01


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed in this environment")
def test_it_says_qat_needs_tensorflow_under_jax(runs):
    returncode, events, _ = runs["jax_qat"].wait()
    assert returncode == 1
    assert events[-1] == {
        "event": "error",
        "message": "qat needs the TensorFlow backend (KERAS_BACKEND=tensorflow); this run uses jax",
    }


@pytest.mark.parametrize("step, message", [
    ({"technique": "pruning", "target_sparsity": 1},
     "The pruning target_sparsity must be at least 0 and below 1"),
    ({"technique": "pruning", "structure": "4:8"}, "The pruning structure must be one of"),
    ({"technique": "pruning", "begin": 0.8, "end": 0.2}, "begin must not come after end"),
    ({"technique": "clustering", "clusters": 1},
     "The clustering clusters must be between 2 and 65,536"),
    ({"technique": "qat", "mode": "float16"}, "The qat mode must be one of"),
])
def test_it_rejects_bad_parameters(step, message):
    with pytest.raises(ValueError, match=message):
        validate_step(step)


def test_it_fills_in_the_defaults():
    assert validate_step({"technique": "pruning"})["target_sparsity"] == 0.8
    assert validate_step({"technique": "clustering"})["clusters"] == 16


def test_it_decays_sparsity_polynomially():
    from keras import ops

    schedule = compression.PolynomialDecay(0.8, begin=10, end=110, power=3)
    values = [float(ops.convert_to_numpy(schedule(float(s)))) for s in (0, 10, 60, 110, 500)]
    assert values == pytest.approx([0.0, 0.0, 0.8 * (1 - 0.5**3), 0.8, 0.8])


def test_it_masks_the_smallest_magnitudes():
    from keras import ops

    kernel = np.random.default_rng(0).standard_normal((40, 30)).astype(np.float32)
    mask = compression.MagnitudeMask(10**6, compression.PolynomialDecay(0.75, 0, 1))
    pruned = ops.convert_to_numpy(mask(kernel))
    assert np.count_nonzero(pruned == 0) == 900
    assert np.abs(pruned[pruned != 0]).min() > np.abs(kernel[pruned == 0]).max()


def test_it_keeps_the_two_largest_of_four():
    from keras import ops

    kernel = np.array([[1.0, 0], [-4, 0], [3, 0], [2, 0]], dtype=np.float32)
    pruned = ops.convert_to_numpy(compression.TwoOfFourMask(5, begin=0)(kernel))
    assert pruned[:, 0].tolist() == [0, -4, 3, 0]
    untouched = ops.convert_to_numpy(compression.TwoOfFourMask(5, begin=6)(kernel))
    assert untouched.tolist() == kernel.tolist()


def test_it_finds_k_means_centroids():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(c, 0.01, 100) for c in (-1.0, 0.0, 2.0)])
    centroids, assignment = compression.kmeans_1d(values, 3)
    assert centroids == pytest.approx([-1.0, 0.0, 2.0], abs=0.01)
    assert np.all(np.abs(centroids[assignment] - values) < 0.1)


# The toolkit comparison that justifies writing these steps on Keras 3 (see
# runners/engine/techniques/compression.py).
# It needs tf-keras and tensorflow-model-optimization, which are not project dependencies
# (tf-keras installs the full tensorflow package over tensorflow-cpu), so it runs only when
# TFMOT_PYTHON names an interpreter that has them (and TensorFlow 2.21).
TOOLKIT_PRUNING = """
import json, math, sys
import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as K
from runners.engine import data as datasets, zoo

epochs = int(sys.argv[1])
d = datasets.load({"name": "digits"}, 0)
K.utils.set_random_seed(0)
inputs = K.Input(tuple(d.input_shape))
x = zoo._seed_mlp(K.layers, inputs, zoo.resolve_params("seed_mlp", {}))
x = K.layers.Dense(10, name="logits")(x)
model = K.Model(inputs, K.layers.Activation("softmax")(x))
total = epochs * math.ceil(len(d.x_train) / 64)
schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.8, 0, round(0.7 * total), 3, 1)
model = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
model.compile(K.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
model.fit(d.x_train, d.y_train, epochs=epochs, batch_size=64, verbose=0,
          callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
model = tfmot.sparsity.keras.strip_pruning(model)
kernels = [layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")]
sparsity = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
accuracy = float(np.mean(np.argmax(model.predict(d.x_test, verbose=0), -1) == d.y_test))
print(json.dumps({"kernel_sparsity": sparsity, "test_accuracy": accuracy}))
"""


@pytest.mark.skipif(not os.environ.get("TFMOT_PYTHON"),
                    reason="TFMOT_PYTHON (an interpreter with the toolkit) is not set")
def test_it_matches_the_toolkit_on_the_same_model(tmp_path):
    epochs = 10
    ours = EngineRun(spec([{"technique": "pruning"}], epochs=epochs, params={}), tmp_path)
    toolkit = subprocess.run(
        [os.environ["TFMOT_PYTHON"], "-c", TOOLKIT_PRUNING, str(epochs)], cwd=ROOT,
        capture_output=True, text=True, timeout=600, check=True,
    )
    reference = json.loads(toolkit.stdout.splitlines()[-1])
    _, result = ours.succeeded()
    assert result["kernel_sparsity"] == pytest.approx(reference["kernel_sparsity"], abs=0.001)
    assert abs(result["test_accuracy"] - reference["test_accuracy"]) <= 0.08, (
        result["test_accuracy"], reference["test_accuracy"])


def test_the_toolkit_is_not_imported_by_the_engine():
    # Importing it would set TF_USE_LEGACY_KERAS=1 for the whole process.
    code = ("import sys; import runners.engine.techniques; "
            "print('tensorflow_model_optimization' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
