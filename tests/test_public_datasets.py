"""The public datasets in the engine: loaders on tiny archives in the upstream formats (which
the tests write, see public_archives.py), subsets, the restricted unpickling of CIFAR
batches, the missing-file messages, and runs that never reach the network."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from public_archives import CLASSES, cifar_batch, idx_bytes, labels, write, write_cifar10

from runners.engine import data, public, schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = {"mnist": (28, 28), "fashion_mnist": (28, 28), "cifar10": (32, 32, 3),
          "cifar100": (32, 32, 3)}
# Runs the engine's command line with an audit hook that kills the process at its first
# attempt to resolve a name or open a connection: exit status 99 is a network attempt.
NO_NETWORK = (
    "import os, sys\n"
    "def hook(event, args):\n"
    "    if event in ('socket.connect', 'socket.getaddrinfo', 'urllib.Request'):\n"
    "        os.write(2, f'network attempt: {event} {args}'.encode()); os._exit(99)\n"
    "sys.addaudithook(hook)\n"
    "from runners.engine.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("name", list(public.PUBLIC))
def test_it_loads_each_dataset_as_keras_datasets_does(tmp_path, name):
    write(name, tmp_path)
    x_train, y_train, x_test, y_test = public.load(name, str(tmp_path))
    assert x_train.dtype == np.uint8 and x_test.dtype == np.uint8
    assert x_train.shape[1:] == SHAPES[name] and x_test.shape[1:] == SHAPES[name]
    assert y_train.dtype == np.int32 and y_train.shape == (len(x_train),)
    classes = CLASSES[name]
    np.testing.assert_array_equal(y_train, labels(len(y_train), classes))
    np.testing.assert_array_equal(y_test, labels(len(y_test), classes))


def test_it_puts_cifar_channels_last_as_keras_does(tmp_path):
    write_cifar10(tmp_path)
    x_train = public.load("cifar10", str(tmp_path))[0]
    batch = pickle.loads(cifar_batch(20, 10, 1), encoding="bytes")
    # A row is 1024 red, then 1024 green, then 1024 blue values.
    first = batch[b"data"][0]
    np.testing.assert_array_equal(x_train[0, :, :, 0].ravel(), first[:1024])
    np.testing.assert_array_equal(x_train[0, :, :, 2].ravel(), first[2048:])


def test_it_reads_the_archive_under_the_name_keras_cache_keeps(tmp_path):
    (path,) = write_cifar10(tmp_path)
    path.rename(tmp_path / "cifar-10-batches-py-target_archive")
    assert public.missing_message("cifar10", str(tmp_path)) is None
    assert public.load("cifar10", str(tmp_path))[0].shape == (100, 32, 32, 3)


@pytest.mark.parametrize("name", list(public.PUBLIC))
def test_it_loads_a_scaled_subset_with_a_channel_axis(tmp_path, name):
    write(name, tmp_path)
    classes = CLASSES[name]
    spec = {"name": name, "directory": str(tmp_path), "train_samples": classes + 20,
            "test_samples": classes}
    loaded = data.load(spec, seed=0)
    side = SHAPES[name][0]
    channels = 3 if name.startswith("cifar") else 1
    assert loaded.x_train.shape[1:] == (side, side, channels)
    assert loaded.x_train.dtype == np.float32 and 0 <= loaded.x_train.min() <= \
        loaded.x_train.max() <= 1
    assert len(loaded.x_train) + len(loaded.x_val) == spec["train_samples"]
    assert len(loaded.x_test) == classes
    assert loaded.num_classes == classes
    assert data.describe(spec) == {
        "input_shape": [side, side, channels], "num_classes": classes,
        "train_samples": len(loaded.x_train), "validation_samples": len(loaded.x_val),
        "test_samples": classes}


def test_the_subset_is_stratified_and_seeded(tmp_path):
    write("mnist", tmp_path)
    spec = {"name": "mnist", "directory": str(tmp_path), "train_samples": 50,
            "test_samples": 10}

    def drawn(seed):
        loaded = data.load(spec, seed)
        return loaded, np.concatenate([loaded.y_train, loaded.y_val])

    first, y = drawn(0)
    # 60 samples, 6 per class, of which 50: 5 of every class; the test set 1 of each.
    assert np.bincount(y, minlength=10).tolist() == [5] * 10
    assert np.bincount(first.y_test, minlength=10).tolist() == [1] * 10
    again, _ = drawn(0)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    other, _ = drawn(1)
    assert not np.array_equal(np.sort(first.x_train.ravel()), np.sort(other.x_train.ravel()))


def test_the_subset_works_for_digits_and_synthetic_data():
    loaded = data.load({"name": "digits", "train_samples": 200, "test_samples": 50}, seed=3)
    assert len(loaded.x_train) + len(loaded.x_val) == 200 and len(loaded.x_test) == 50
    assert np.bincount(np.concatenate([loaded.y_train, loaded.y_val])).tolist() == [20] * 10
    loaded = data.load({"name": "synthetic", "samples": 500, "train_samples": 100}, seed=0)
    assert len(loaded.x_train) + len(loaded.x_val) == 100 and len(loaded.x_test) == 100


def test_it_refuses_a_subset_larger_than_the_dataset(tmp_path):
    write("mnist", tmp_path)
    with pytest.raises(ValueError, match="has 60 training samples; a subset cannot ask for "
                                         "61"):
        data.load({"name": "mnist", "directory": str(tmp_path), "train_samples": 61}, 0)
    with pytest.raises(ValueError, match="has 1,437 training samples"):
        data.describe({"name": "digits", "train_samples": 5000})
    with pytest.raises(ValueError, match="Test samples must be between 10 and"):
        data.describe({"name": "cifar10", "test_samples": 5})


def test_it_says_which_file_is_missing_and_how_to_add_it(tmp_path):
    write("fashion_mnist", tmp_path)
    os.remove(tmp_path / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    message = public.missing_message("fashion_mnist", str(tmp_path))
    assert "t10k-images-idx3-ubyte.gz is missing from" in message
    assert str(tmp_path / "fashion-mnist") in message
    assert "python manage.py dataset fetch fashion_mnist" in message
    assert "python manage.py dataset import fashion_mnist FILE" in message
    with pytest.raises(ValueError) as caught:
        data.load({"name": "fashion_mnist", "directory": str(tmp_path)}, 0)
    assert str(caught.value) == message


def test_the_schema_refuses_a_missing_dataset_and_accepts_a_present_one(tmp_path):
    spec = {"name": "c", "model": {"arch": "seed_cnn"},
            "dataset": {"name": "cifar10", "train_samples": 1000}}
    with pytest.raises(ValueError) as caught:
        schema.check_spec(spec, dataset_dir=str(tmp_path))
    assert list(caught.value.messages) == ["dataset.name"]
    assert "cifar-10-python.tar.gz is missing" in str(caught.value)
    write_cifar10(tmp_path)
    for arch in ("seed_mlp", "seed_cnn", "resnet"):
        checked = schema.check_spec({**spec, "model": {"arch": arch}},
                                    dataset_dir=str(tmp_path))
        assert checked["dataset"] == {"name": "cifar10", "train_samples": 1000}


def test_it_refuses_a_cifar_batch_that_names_another_global(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    hostile = pickle.dumps({b"data": Exploit(), b"labels": []}, protocol=2)
    write_cifar10(tmp_path, members={"cifar-10-batches-py/data_batch_3": hostile})
    with pytest.raises(ValueError) as caught:
        public.load("cifar10", str(tmp_path))
    message = str(caught.value)
    assert "cifar-10-python.tar.gz: cifar-10-batches-py/data_batch_3 was refused" in message
    assert f"it names {os.system.__module__}.system" in message
    assert "damaged or malicious" in message
    assert not marker.exists()


def test_it_refuses_an_idx_file_with_the_wrong_magic_number(tmp_path):
    write("fashion_mnist", tmp_path)
    (tmp_path / "fashion-mnist" / "train-labels-idx1-ubyte.gz").write_bytes(
        idx_bytes(labels(60, 10), 2051))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz has magic number 2051, "
                                         "expected 2049"):
        public.load("fashion_mnist", str(tmp_path))


def engine(tmp_path, spec):
    """The engine's command line in a child process that dies (99) at any network attempt."""
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, "run", str(spec_path), "--artifacts",
         str(tmp_path / "artifacts")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        # Keras' own cache, should anything look there, is empty and the test's.
        env={**os.environ, "KERAS_HOME": str(tmp_path / "keras"),
             "ACCELWEB_DATASET_DIR": str(tmp_path / "elsewhere")})
    assert done.returncode != 99, done.stderr[-2000:]
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def engine_spec(name, cache, **subset):
    return {"name": "t", "model": {"arch": "seed_cnn", "params": {"filters": 4, "dense": 16}},
            "dataset": {"name": name, "directory": str(cache), **subset},
            "training": {"epochs": 2, "batch_size": 16, "seed": 0}, "hardware": "cpu",
            "steps": [], "benchmark": {"trials": 1, "latency_samples": 5, "warmup": 1}}


def test_a_run_without_the_files_fails_before_training_and_downloads_nothing(tmp_path):
    returncode, events, _ = engine(tmp_path, engine_spec("cifar10", tmp_path / "cache"))
    assert returncode == 1
    assert [e["event"] for e in events] == ["phase", "error"]
    assert events[0]["phase"] == "load_data"
    assert "CIFAR-10 is not on this server: cifar-10-python.tar.gz is missing" in \
        events[1]["message"]
    assert "manage.py dataset fetch cifar10" in events[1]["message"]
    assert not (tmp_path / "keras").exists()


def test_a_run_trains_on_a_subset_of_an_mnist_file(tmp_path):
    cache = tmp_path / "cache"
    write("mnist", cache)
    returncode, events, stderr = engine(
        tmp_path, engine_spec("mnist", cache, train_samples=50, test_samples=10))
    assert returncode == 0, stderr[-2000:]
    start = next(e for e in events if e["event"] == "start")
    assert start["input_shape"] == [28, 28, 1] and start["num_classes"] == 10
    assert (start["train_samples"], start["validation_samples"], start["test_samples"]) == \
        (45, 5, 10)
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]
    result = next(e for e in events if e["event"] == "result")
    assert 0 <= result["test_accuracy"] <= 1
