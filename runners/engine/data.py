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
MAX_CLASSES = 10_000
# What an uploaded .npz may unpack to: compressed archives (savez_compressed) can be far
# larger in memory than on disk.
MAX_NPZ_BYTES = 2 * 1024**3


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
    x_train, x_test, y_train, y_test, classes = _check_npz(_read_npz(path))
    fit, val = _split_sizes(len(x_train), VALIDATION_FRACTION)
    return _description(_sample_shape(x_train), classes, fit, val, len(x_test))


def _check_npz(arrays):
    """The arrays as the engine uses them (labels as class indices) and the class count.

    Labels may be class indices (N,) or (N, 1), or one-hot rows (N, classes)."""
    x_train, x_test = arrays["x_train"], arrays["x_test"]
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
    if 0 in x_train.shape[1:]:
        raise ValueError(f"x_train samples have shape {x_train.shape[1:]}; a sample cannot "
                         "have an empty dimension")
    labels, widths = {}, []
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        y, width = _labels(arrays[y_key], y_key)
        if len(y) != len(arrays[x_key]):
            raise ValueError(f"{x_key} has {len(arrays[x_key])} samples but {y_key} has {len(y)}")
        labels[y_key] = y
        if width is not None:
            widths.append(width)
    for key in ("x_train", "x_test"):
        x = arrays[key]
        if x.dtype.kind == "f":
            bad = x.size - int(np.count_nonzero(np.isfinite(x)))
            if bad:
                raise ValueError(f"{key} holds {bad:,} NaN or infinite values; inputs must be "
                                 "finite numbers")
    y_train, y_test = labels["y_train"], labels["y_test"]
    if len(x_train) < MIN_TRAIN_SAMPLES:
        raise ValueError(f"x_train has {len(x_train)} samples; at least {MIN_TRAIN_SAMPLES} needed")
    if len(x_test) < MIN_TEST_SAMPLES:
        raise ValueError(
            f"the test set has {len(x_test)} samples; at least {MIN_TEST_SAMPLES} are needed "
            "for a meaningful accuracy"
        )
    if len(np.unique(y_train)) < 2:
        raise ValueError("y_train holds fewer than 2 classes; a classifier needs at least 2")
    # One-hot rows declare the classes; class indices imply them through y_train.
    classes = max([int(y_train.max()) + 1, *widths])
    if y_test.max() >= classes:
        raise ValueError(
            f"y_test holds label {int(y_test.max())}, out of the range of y_train's classes "
            f"(0..{classes - 1}); every test label must be a class the model trains on"
        )
    return x_train, x_test, y_train, y_test, classes


def _labels(y, key):
    """Class indices (int32) and, for one-hot rows, their width; ValueError otherwise."""
    if y.dtype.kind == "b":
        y = y.astype(np.int32)
    if y.ndim == 2 and y.shape[1] >= 2:
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise ValueError(f"{key} has shape {y.shape} but is not one-hot; give one class "
                             "index per sample, or rows with a single 1 and zeros elsewhere")
        if y.shape[1] > MAX_CLASSES:
            raise ValueError(f"{key} has {y.shape[1]:,} one-hot columns; at most "
                             f"{MAX_CLASSES:,} classes are accepted")
        return y.argmax(axis=1).astype(np.int32), int(y.shape[1])
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{key} has shape {y.shape}; expected one integer label per sample")
    if len(y) and not np.all(np.isfinite(y) & (np.asarray(y) == np.round(y))):
        raise ValueError(f"{key} holds non-integer labels; labels must be class indices")
    if len(y) and y.min() < 0:
        raise ValueError(f"{key} holds negative labels; labels must be 0, 1, 2, ...")
    if len(y) and y.max() >= MAX_CLASSES:
        raise ValueError(f"{key} holds label {y.max():.0f}; at most {MAX_CLASSES:,} classes "
                         f"(labels 0..{MAX_CLASSES - 1}) are accepted")
    return y.astype(np.int32), None


def load(spec, seed):
    """Load a dataset: x float32 in [0, 1] with a channel axis for images, y int32."""
    spec = validate_dataset(spec)
    if spec["name"] == "npz":
        x_train, x_test, y_train, y_test, classes = _check_npz(_read_npz(spec["path"]))
        x_train, x_test = _scale(x_train), _scale(x_test)
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
        _check_headers(name, archive)
        try:
            return {k: archive[k] for k in NPZ_KEYS}
        except ValueError as exc:
            raise _pickle_error(name, exc) from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{name} is not a readable .npz archive ({exc})") from None


def _check_headers(name, archive):
    """Refuse object arrays and oversized ones from their .npy headers, before any data is
    read (a compressed archive can unpack to far more memory than its size on disk)."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    total = 0
    for key in NPZ_KEYS:
        try:
            with archive.zip.open(f"{key}.npy") as member:
                version = np.lib.format.read_magic(member)
                if version not in readers:
                    raise ValueError(f".npy format version {version}")
                shape, _, dtype = readers[version](member)
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{name} is not a readable .npz archive ({key}: {exc})") from None
        if dtype.hasobject:
            raise ValueError(f"{name} contains Python objects; only plain numeric arrays are "
                             "accepted")
        total += math.prod(shape) * dtype.itemsize
    if total > MAX_NPZ_BYTES:
        raise ValueError(f"{name} unpacks to {total:,} bytes of arrays; the limit is "
                         f"{MAX_NPZ_BYTES:,}")


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
