"""The model zoo: analytic parameter counts against Keras, and shape checks the web shows."""

import collections
import subprocess
import sys
from pathlib import Path

import pytest

from runners.engine import zoo

ROOT = Path(__file__).resolve().parent.parent

CONFIGS = [
    ("seed_mlp", {}, (8, 8, 1), 10),
    ("seed_mlp", {"units": 256}, (32, 32, 3), 10),
    ("seed_mlp", {"units": 7}, (20,), 3),
    ("seed_cnn", {}, (8, 8, 1), 10),
    ("seed_cnn", {}, (32, 32, 3), 10),
    ("seed_cnn", {"filters": 8, "dense": 16}, (9, 7, 2), 4),
    ("resnet", {}, (32, 32, 3), 10),
    ("resnet", {"depth": 2, "width": 8, "batch_norm": False}, (8, 8, 1), 10),
    # Deeper than the three downsamplings: later blocks keep resolution and width.
    ("resnet", {"depth": 9, "width": 4}, (8, 8, 3), 5),
]


@pytest.mark.parametrize(("arch", "params", "shape", "classes"), CONFIGS)
def test_it_counts_parameters_like_keras(arch, params, shape, classes):
    model = zoo.build_model({"arch": arch, "params": params}, shape, classes)
    assert zoo.count_params(arch, params, shape, classes) == model.count_params()


def test_it_keeps_probabilities_float32_under_mixed_precision():
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = zoo.build_model({"arch": "seed_cnn", "params": {}}, (8, 8, 1), 10)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[1].compute_dtype == "float16"
    assert model.output.dtype == "float32"


def test_it_answers_the_web_without_loading_a_framework():
    probe = (
        "import sys\n"
        "from runners.engine import data, techniques, zoo\n"
        "zoo.count_params('resnet', {}, [32, 32, 3], 10)\n"
        "zoo.check_input_shape('seed_cnn', {}, [8, 8, 1])\n"
        "data.describe({'name': 'digits'})\n"
        "techniques.validate_step({'technique': 'ptq'})\n"
        "loaded = {'keras', 'tensorflow', 'jax', 'django', 'celery'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True)


@pytest.mark.parametrize(("arch", "shape", "message"), [
    ("seed_cnn", (64,), "seed_cnn needs image samples shaped (height, width, channels)"),
    ("seed_cnn", (3, 8, 1), "seed_cnn needs images of at least 4x4 pixels, but the data has 3x8"),
    ("resnet", (6, 6, 3), "resnet needs images of at least 8x8 pixels, but the data has 6x6"),
    ("resnet", (8, 8), "resnet needs image samples shaped (height, width, channels)"),
])
def test_it_explains_input_shapes_an_arch_cannot_take(arch, shape, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        zoo.check_input_shape(arch, {}, shape)


def test_it_lets_the_mlp_take_any_shape():
    for shape in [(3,), (8, 8), (2, 2, 1), (4, 4, 4)]:
        zoo.check_input_shape("seed_mlp", {}, shape)


def test_it_rejects_bad_model_parameters():
    with pytest.raises(ValueError, match="Unknown setting 'filters' for the seed_mlp parameters"):
        zoo.resolve_params("seed_mlp", {"filters": 3})
    with pytest.raises(ValueError, match="Dropout must be between 0 and 0.9"):
        zoo.resolve_params("seed_cnn", {"dropout": 1.0})
    with pytest.raises(ValueError, match="BatchNorm must be true or false"):
        zoo.resolve_params("resnet", {"batch_norm": "yes"})
    with pytest.raises(ValueError, match="unknown model arch 'vgg'"):
        zoo.count_params("vgg", {}, (8, 8, 1), 10)
    with pytest.raises(ValueError, match="Depth must be an integer"):
        zoo.resolve_params("resnet", {"depth": 5.5})
    assert zoo.resolve_params("resnet", {"depth": 5.0}) == {
        "depth": 5, "width": 16, "batch_norm": True}


def test_it_loads_an_uploaded_model_in_safe_mode(tmp_path):
    original = zoo.build_model({"arch": "seed_mlp", "params": {"units": 5}}, (4,), 3)
    path = tmp_path / "upload.keras"
    original.save(path)
    loaded = zoo.build_model({"arch": "uploaded", "path": str(path)}, (4,), 3)
    assert loaded.count_params() == original.count_params()
    assert not loaded.compiled
    with pytest.raises(ValueError, match="known only after loading"):
        zoo.count_params("uploaded", {}, (4,), 3)


@pytest.mark.parametrize("arch, params, shape", [
    ("seed_mlp", {}, (8, 8, 1)),
    ("seed_cnn", {"filters": 4, "dense": 8}, (8, 8, 1)),
    ("resnet", {"depth": 3, "width": 4}, (16, 16, 3)),
    ("resnet", {"depth": 7, "width": 2, "batch_norm": False}, (16, 16, 3)),
])
def test_its_layer_facts_are_those_of_the_model_it_builds(arch, params, shape):
    from runners.engine.modelfile import straight_chain

    model = zoo.build_model({"arch": arch, "params": params}, shape, 10)
    built = collections.Counter(layer.__class__.__name__ for layer in model.layers
                                if layer.__class__.__name__ != "InputLayer")

    facts = zoo.facts(arch, params)
    assert facts["layers"] == dict(built)
    assert facts["chain"] == (straight_chain(model) is not None)
    assert facts["nested"] is False
