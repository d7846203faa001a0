"""Datasets: digits, synthetic and uploaded .npz files, all as float32 numpy arrays.

Every dataset is split the same way: a stratified 80/20 train/test split (unless the file
brings its own test set), then 10% of the training part held out for validation.
"""

import math
import os
import zipfile
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1
DIGITS_SAMPLES = 1797
DIGITS_SHAPE = (8, 8, 1)
SYNTHETIC_DEFAULTS = {"samples": 2000, "shape": [32, 32, 3], "classes": 10, "seed": 0}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
MIN_TRAIN_SAMPLES = 20
MIN_TEST_SAMPLES = 10
MAX_SYNTHETIC_VALUES = 50_000_000


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self):
        return list(self.x_train.shape[1:])


def validate_dataset(spec):
    """Return the dataset spec with defaults filled in; ValueError on anything unusable."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError('dataset must be an object with a "name"')
    name = spec["name"]
    if name == "digits":
        _reject_unknown(spec, {"name"})
        return {"name": "digits"}
    if name == "synthetic":
        _reject_unknown(spec, {"name", *SYNTHETIC_DEFAULTS})
        filled = {"name": "synthetic", **SYNTHETIC_DEFAULTS, **spec}
        filled["shape"] = list(filled["shape"]) if isinstance(filled["shape"], (list, tuple)) \
            else filled["shape"]
        _check_synthetic(filled)
        return filled
    if name == "npz":
        _reject_unknown(spec, {"name", "path"})
        path = spec.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ValueError('dataset "npz" needs "path", an absolute path to a .npz file')
        return {"name": "npz", "path": path}
    raise ValueError(f"unknown dataset {name!r}; choose digits, synthetic or npz")


def describe(spec):
    """Shapes and sizes of a dataset without generating it (npz files are read and checked)."""
    spec = validate_dataset(spec)
    if spec["name"] == "npz":
        return inspect_npz(spec["path"])
    if spec["name"] == "digits":
        total, shape, classes = DIGITS_SAMPLES, list(DIGITS_SHAPE), 10
    else:
        total, shape, classes = spec["samples"], spec["shape"], spec["classes"]
    train, test = _split_sizes(total, TEST_FRACTION)
    fit, val = _split_sizes(train, VALIDATION_FRACTION)
    return _description(shape, classes, fit, val, test)


def inspect_npz(path):
    """Check an uploaded .npz in keras.datasets layout and describe it; ValueError if unusable."""
    arrays = _read_npz(path)
    x_train, y_train, x_test, y_test = (arrays[k] for k in NPZ_KEYS)
    for key in NPZ_KEYS:
        if arrays[key].dtype.kind not in "biuf":
            raise ValueError(
                f"{key} has dtype {arrays[key].dtype}; only numeric arrays are accepted"
            )
    if x_train.ndim not in (2, 3, 4):
        raise ValueError(
            f"x_train has shape {x_train.shape}; expected (N, features), (N, H, W) or (N, H, W, C)"
        )
    if x_test.shape[1:] != x_train.shape[1:]:
        raise ValueError(
            f"x_test samples have shape {x_test.shape[1:]} but x_train samples {x_train.shape[1:]}"
        )
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        y = arrays[y_key]
        if y.ndim == 2 and y.shape[1] == 1:
            y = arrays[y_key] = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"{y_key} has shape {y.shape}; expected one integer label per sample")
        if len(y) != len(arrays[x_key]):
            raise ValueError(f"{x_key} has {len(arrays[x_key])} samples but {y_key} has {len(y)}")
        if len(y) and not np.all(np.isfinite(y) & (np.asarray(y) == np.round(y))):
            raise ValueError(f"{y_key} holds non-integer labels; labels must be class indices")
        if len(y) and y.min() < 0:
            raise ValueError(f"{y_key} holds negative labels; labels must be 0, 1, 2, ...")
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    if len(np.unique(y_train)) < 2:
        raise ValueError("y_train holds fewer than 2 classes; a classifier needs at least 2")
    if len(x_train) < MIN_TRAIN_SAMPLES:
        raise ValueError(f"x_train has {len(x_train)} samples; at least {MIN_TRAIN_SAMPLES} needed")
    if len(x_test) < MIN_TEST_SAMPLES:
        raise ValueError(
            f"the test set has {len(x_test)} samples; at least {MIN_TEST_SAMPLES} are needed "
            "for a meaningful accuracy"
        )
    classes = int(max(y_train.max(), y_test.max())) + 1
    fit, val = _split_sizes(len(x_train), VALIDATION_FRACTION)
    return _description(_sample_shape(x_train), classes, fit, val, len(x_test))


def load(spec, seed):
    """Load a dataset: x float32 in [0, 1] with a channel axis for images, y int32."""
    spec = validate_dataset(spec)
    if spec["name"] == "npz":
        inspect_npz(spec["path"])
        arrays = _read_npz(spec["path"])
        x_train, x_test = (_scale(arrays[k]) for k in ("x_train", "x_test"))
        y_train, y_test = (arrays[k].reshape(len(arrays[k])).astype(np.int32)
                           for k in ("y_train", "y_test"))
        classes = int(max(y_train.max(), y_test.max())) + 1
    else:
        if spec["name"] == "digits":
            x, y, classes = _digits()
        else:
            x, y, classes = synthetic(spec)
        x_train, x_test, y_train, y_test = _split(x, y, TEST_FRACTION, seed)
    x_train, x_val, y_train, y_val = _split(x_train, y_train, VALIDATION_FRACTION, seed)
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, classes)


def synthetic(spec):
    """Images with one smooth random prototype per class plus noise: learnable, not trivial.

    Prototypes are drawn on a coarse grid and upsampled so convolutions have local structure
    to find; the noise keeps single pixels from giving the class away.
    """
    spec = validate_dataset({"name": "synthetic", **spec})
    rng = np.random.default_rng(spec["seed"])
    shape, classes, samples = tuple(spec["shape"]), spec["classes"], spec["samples"]
    if len(shape) == 3:
        coarse = [math.ceil(shape[0] / 4), math.ceil(shape[1] / 4), shape[2]]
        grid = rng.random((classes, *coarse), dtype=np.float32)
        prototypes = grid.repeat(4, axis=1).repeat(4, axis=2)[:, : shape[0], : shape[1]]
    else:
        prototypes = rng.random((classes, *shape), dtype=np.float32)
    y = rng.permutation(np.arange(samples) % classes).astype(np.int32)
    noise = rng.standard_normal((samples, *shape), dtype=np.float32)
    x = np.clip(0.5 * prototypes[y] + 0.25 + 0.3 * noise, 0.0, 1.0)
    return x.astype(np.float32), y, classes


def _digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are counts 0..16 from the 4x4-block downsampling of the original scans.
    x = (bunch.images / 16.0).astype(np.float32)[..., np.newaxis]
    return x, bunch.target.astype(np.int32), 10


def _split(x, y, fraction, seed):
    counts = np.bincount(y)
    # Stratifying needs two members of every class present; tiny uploads may not have them.
    stratify = y if counts[counts > 0].min() >= 2 else None
    try:
        return train_test_split(x, y, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError:
        # Too few samples per split for every class to appear; fall back to a plain shuffle.
        return train_test_split(x, y, test_size=fraction, random_state=seed)


def _split_sizes(total, fraction):
    # The rule train_test_split applies to a float test_size.
    held_out = math.ceil(fraction * total)
    return total - held_out, held_out


def _description(shape, classes, train, validation, test):
    return {
        "input_shape": [int(d) for d in shape],
        "num_classes": int(classes),
        "train_samples": int(train),
        "validation_samples": int(validation),
        "test_samples": int(test),
    }


def _sample_shape(x):
    # Grayscale (N, H, W) images get the channel axis Conv2D expects.
    return list(x.shape[1:]) + ([1] if x.ndim == 3 else [])


def _scale(x):
    scaled = x.astype(np.float32)
    if x.dtype == np.uint8:
        scaled /= 255.0
    return scaled.reshape(len(x), *_sample_shape(x))


def _read_npz(path):
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        # Neither a zip nor a .npy header: numpy's guess (a pickle) would only confuse.
        raise ValueError(f"{name} is not an .npz archive") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{name} is a single .npy array, not an .npz archive")
    with archive:
        missing = [k for k in NPZ_KEYS if k not in archive.files]
        if missing:
            raise ValueError(
                f"{name} lacks {', '.join(missing)}; expected arrays {', '.join(NPZ_KEYS)} "
                "(the keras.datasets layout)"
            )
        try:
            return {k: archive[k] for k in NPZ_KEYS}
        except ValueError as exc:
            raise _pickle_error(name, exc) from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{name} is not a readable .npz archive ({exc})") from None


def _pickle_error(name, exc):
    # numpy refuses object arrays with allow_pickle=False; say what that means for the user.
    if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
        return ValueError(f"{name} contains Python objects; only plain numeric arrays are accepted")
    return ValueError(f"{name} is not a readable .npz archive ({exc})")


def _check_synthetic(spec):
    shape, classes, samples, seed = (spec[k] for k in ("shape", "classes", "samples", "seed"))
    if not (isinstance(shape, list) and 1 <= len(shape) <= 3
            and all(_is_int(d) and d >= 1 for d in shape)):
        raise ValueError(
            "synthetic shape must be a list of 1 to 3 positive integers, e.g. [32, 32, 3]"
        )
    if not (_is_int(classes) and 2 <= classes <= 1000):
        raise ValueError("synthetic classes must be an integer from 2 to 1000")
    if not (_is_int(samples) and samples >= 5 * classes):
        raise ValueError("synthetic samples must be an integer, at least 5 per class")
    if samples * math.prod(shape) > MAX_SYNTHETIC_VALUES:
        raise ValueError(
            f"synthetic data of {samples} x {shape} is too large "
            f"(limit {MAX_SYNTHETIC_VALUES:,} values)"
        )
    if not _is_int(seed):
        raise ValueError("synthetic seed must be an integer")


def _reject_unknown(spec, allowed):
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(
            f"dataset {spec['name']!r} does not take {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(allowed - {'name'})) or 'no parameters'}"
        )


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
