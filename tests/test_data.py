"""Datasets: sizes described without loading, splits as loaded, and uploads refused clearly."""

import numpy as np
import pytest

from runners.engine import data


def sizes(dataset):
    return {
        "input_shape": dataset.input_shape,
        "num_classes": dataset.num_classes,
        "train_samples": len(dataset.x_train),
        "validation_samples": len(dataset.x_val),
        "test_samples": len(dataset.x_test),
    }


def test_it_describes_digits_as_it_loads_them():
    described = data.describe({"name": "digits"})
    assert described == {"input_shape": [8, 8, 1], "num_classes": 10, "train_samples": 1293,
                         "validation_samples": 144, "test_samples": 360}
    loaded = data.load({"name": "digits"}, seed=0)
    assert sizes(loaded) == described
    assert loaded.x_train.dtype == np.float32 and loaded.y_train.dtype == np.int32
    assert loaded.x_train.min() == 0.0 and loaded.x_train.max() == 1.0
    # Stratified: every class keeps close to its 10% share of the test set.
    assert np.bincount(loaded.y_test).min() >= 35


def test_it_describes_synthetic_data_as_it_loads_it():
    spec = {"name": "synthetic", "samples": 300, "shape": [12, 12, 2], "classes": 3, "seed": 4}
    described = data.describe(spec)
    assert described["input_shape"] == [12, 12, 2] and described["num_classes"] == 3
    assert sizes(data.load(spec, seed=0)) == described
    assert data.describe({"name": "synthetic"})["input_shape"] == [32, 32, 3]


def test_it_generates_synthetic_data_deterministically_by_seed():
    x1, y1, _ = data.synthetic({"samples": 100, "seed": 1})
    x2, y2, _ = data.synthetic({"samples": 100, "seed": 1})
    x3, _, _ = data.synthetic({"samples": 100, "seed": 2})
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert x1.dtype == np.float32 and 0.0 <= x1.min() and x1.max() <= 1.0


def test_it_gives_synthetic_classes_a_learnable_structure():
    dataset = data.load({"name": "synthetic", "samples": 1000, "classes": 5}, seed=0)
    flat = dataset.x_train.reshape(len(dataset.x_train), -1)
    means = np.stack([flat[dataset.y_train == c].mean(axis=0) for c in range(5)])
    test = dataset.x_test.reshape(len(dataset.x_test), -1)
    nearest = np.argmin(((test[:, None, :] - means[None]) ** 2).sum(axis=-1), axis=1)
    assert np.mean(nearest == dataset.y_test) > 0.9


def save_npz(tmp_path, **arrays):
    rng = np.random.default_rng(0)
    layout = {
        "x_train": rng.integers(0, 256, (60, 6, 6), dtype=np.uint8),
        "y_train": np.arange(60) % 3,
        "x_test": rng.integers(0, 256, (12, 6, 6), dtype=np.uint8),
        "y_test": np.arange(12) % 3,
    }
    layout.update(arrays)
    path = tmp_path / "upload.npz"
    np.savez(path, **{k: v for k, v in layout.items() if v is not None})
    return str(path)


def test_it_accepts_a_keras_datasets_npz(tmp_path):
    path = save_npz(tmp_path)
    described = data.inspect_npz(path)
    assert described == {"input_shape": [6, 6, 1], "num_classes": 3, "train_samples": 54,
                         "validation_samples": 6, "test_samples": 12}
    assert data.describe({"name": "npz", "path": path}) == described
    loaded = data.load({"name": "npz", "path": path}, seed=0)
    assert sizes(loaded) == described
    assert loaded.x_train.dtype == np.float32 and loaded.x_train.max() <= 1.0


def test_it_accepts_flat_features(tmp_path):
    path = save_npz(tmp_path, x_train=np.ones((60, 5), np.float32),
                    x_test=np.ones((12, 5), np.float32), y_train=(np.arange(60) % 3)[:, None])
    assert data.inspect_npz(path)["input_shape"] == [5]


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x_train": np.array([{"a": 1}] * 60, dtype=object)},
     "upload.npz contains Python objects; only plain numeric arrays are accepted"),
    ({"y_test": None}, "upload.npz lacks y_test; expected arrays x_train, y_train, x_test, y_test"),
    ({"y_train": -(np.arange(60) % 3)}, "y_train holds negative labels"),
    ({"y_test": np.arange(12) % 3 + 0.5}, "y_test holds non-integer labels"),
    ({"y_train": np.zeros(60, int)}, "y_train holds fewer than 2 classes"),
    ({"y_train": np.arange(59) % 3}, "x_train has 60 samples but y_train has 59"),
    ({"x_test": np.zeros((12, 5, 5), np.uint8)}, r"x_test samples have shape \(5, 5\)"),
    ({"x_test": np.zeros((3, 6, 6), np.uint8), "y_test": np.arange(3)},
     "the test set has 3 samples; at least 10 are needed"),
    ({"x_train": np.array(["a"] * 60)}, "x_train has dtype <U1; only numeric arrays"),
    ({"y_test": np.array([{"label": 1}] * 12, dtype=object)},
     "upload.npz contains Python objects; only plain numeric arrays are accepted"),
    ({"x_train": np.full((60, 6, 6), np.nan, np.float32)},
     "x_train holds 2,160 NaN or infinite values; inputs must be finite numbers"),
    ({"x_test": np.where(np.eye(6, dtype=bool), np.inf, 0.5)[None].repeat(12, axis=0)},
     "x_test holds 72 NaN or infinite values"),
    ({"y_test": np.arange(12) % 4}, r"y_test holds label 3, out of the range of y_train's "
                                    r"classes \(0..2\)"),
    ({"y_train": np.arange(60) % 3 * 5000}, "y_train holds label 10000; at most 10,000 classes"),
    ({"y_train": np.full((60, 3), 0.5)}, r"y_train has shape \(60, 3\) but is not one-hot"),
    ({"y_test": np.eye(2)[np.arange(12) % 2]}, None),
    ({"y_train": np.stack([np.arange(60) % 3] * 2)}, r"y_train has shape \(2, 60\) but is not"),
    ({"y_train": np.zeros((60, 2, 2))}, r"y_train has shape \(60, 2, 2\); expected one integer"),
    ({"x_test": np.zeros((11, 6, 6), np.uint8)}, "x_test has 11 samples but y_test has 12"),
    ({"x_train": np.zeros((60, 0)), "x_test": np.zeros((12, 0))},
     r"x_train samples have shape \(0,\); a sample cannot have an empty dimension"),
])
def test_it_refuses_unusable_npz_files_with_a_reason(tmp_path, arrays, message):
    if message is None:  # a control: the same kind of file, usable
        data.inspect_npz(save_npz(tmp_path, **arrays))
        return
    with pytest.raises(ValueError, match=message):
        data.inspect_npz(save_npz(tmp_path, **arrays))


def test_it_takes_one_hot_labels_as_class_indices(tmp_path):
    labels = np.arange(60) % 3
    path = save_npz(tmp_path, y_train=np.eye(4, dtype=np.float32)[labels],
                    y_test=(np.arange(12) % 3)[:, None])

    # The one-hot width declares the classes, even one the data never uses.
    assert data.inspect_npz(path)["num_classes"] == 4
    loaded = data.load({"name": "npz", "path": path}, seed=0)
    assert loaded.y_train.ndim == 1 and loaded.y_train.dtype == np.int32
    assert sorted(np.unique(np.concatenate([loaded.y_train, loaded.y_val]))) == [0, 1, 2]
    assert loaded.num_classes == 4


def test_it_refuses_an_npz_that_unpacks_beyond_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "bomb.npz"
    rng = np.random.default_rng(0)
    np.savez_compressed(path, x_train=np.zeros((60, 64, 64), np.float32),
                        y_train=np.arange(60) % 3, x_test=rng.random((12, 64, 64)),
                        y_test=np.arange(12) % 3)
    monkeypatch.setattr(data, "MAX_NPZ_BYTES", 1_000_000)

    with pytest.raises(ValueError, match=r"bomb.npz unpacks to 1,376,832 bytes of arrays; "
                                         r"the limit is 1,000,000"):
        data.inspect_npz(str(path))


def test_it_refuses_files_that_are_not_npz_archives(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz is not an .npz archive"):
        data.inspect_npz(str(junk))
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="single.npy is a single .npy array"):
        data.inspect_npz(str(single))


def test_it_rejects_bad_dataset_specs():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.describe({"name": "mnist"})
    with pytest.raises(ValueError, match="synthetic classes must be an integer from 2 to 1000"):
        data.describe({"name": "synthetic", "classes": 1})
    with pytest.raises(ValueError, match='dataset "npz" needs "path"'):
        data.describe({"name": "npz", "path": "relative.npz"})
