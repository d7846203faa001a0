"""Datasets: digits, synthetic, the public ones (MNIST, Fashion-MNIST, CIFAR-10/100, read
from a cache directory by runners.engine.public) and uploaded .npz files, all as float32
numpy arrays.

Every dataset is split the same way: a stratified 80/20 train/test split (unless the file
brings its own test set), then 10% of the training part held out for validation. A subset
(``train_samples``, ``test_samples``) is drawn from the training and test parts first,
stratified by class and seeded by the training seed, so a CIFAR-10 run fits a CPU runner.
"""

import math
import os
import tokenize
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from . import public
from .fields import INVALID, OMIT, Integer, Invalid, ListOf, Object, Problems, Tagged, Text
from .modelfile import check_directory, zip_directory

TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1
DIGITS_SAMPLES = 1797
DIGITS_SHAPE = (8, 8, 1)
MIN_TRAIN_SAMPLES = 20
MIN_TEST_SAMPLES = 10
MAX_SUBSET = 10_000_000
# Every dataset takes these: how many of its training and test samples a run uses.
SUBSET = {
    "train_samples": Integer(
        MIN_TRAIN_SAMPLES, MAX_SUBSET, OMIT, label="training samples",
        help="Train on this many of the training samples (stratified by class, drawn with "
             "the training seed); 10% of them are held out for validation. All when left "
             "out."),
    "test_samples": Integer(
        MIN_TEST_SAMPLES, MAX_SUBSET, OMIT, label="test samples",
        help="Test on this many of the test samples (stratified, seeded). All when left "
             "out."),
}
SYNTHETIC = Object({
    "samples": Integer(100, 200_000, 2000),
    "shape": ListOf(Integer(1, 512, label="each dimension"), [32, 32, 3], min_items=1,
                    max_items=3, help="[features], [height, width] or [height, width, "
                                      "channels]."),
    "classes": Integer(2, 1000, 10),
    "seed": Integer(0, 2**31 - 1, 0),
    **SUBSET,
})
SYNTHETIC_DEFAULTS = SYNTHETIC.defaults
DATASETS = {"digits": Object(SUBSET), "synthetic": SYNTHETIC,
            **{name: Object(SUBSET) for name in public.PUBLIC}}
# The engine's dataset: an upload is an .npz named by its absolute path; a public dataset
# is read from the cache directory the web passes (public.default_dir() when left out).
_DIRECTORY = Text(4096, OMIT, blank=False, help="Absolute path of the dataset cache.")
DATASET = Tagged("name", {
    **DATASETS,
    **{name: Object({**SUBSET, "directory": _DIRECTORY}) for name in public.PUBLIC},
    "npz": Object({"path": Text(4096, blank=False), **SUBSET}),
}, default_tag="digits", label="dataset")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_SYNTHETIC_VALUES = 50_000_000
MAX_CLASSES = 10_000
# An .npz in the keras.datasets layout holds 4 members; counted from the zip's end record,
# before zipfile parses a directory entry for each.
MAX_NPZ_MEMBERS = 64
# What a run may load: compressed archives (savez_compressed) can be far larger in memory
# than on disk, so the zip's and the .npy headers' declared sizes are checked first.
MAX_NPZ_BYTES = 2 * 1024**3
# What an upload may declare. The upload check (inspect_npz) reads the arrays through a
# chunk at a time, so this bounds the time it takes, not the web process's memory; it is
# under MAX_NPZ_BYTES so that whatever is accepted can be loaded by a run.
MAX_UPLOAD_NPZ_BYTES = 1024**3
READ_CHUNK_BYTES = 4 * 1024**2


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
    """Return the dataset spec (the engine's: an .npz named by its path) with defaults filled
    in; fields.Invalid (a ValueError) on anything unusable."""
    problems = Problems()
    cleaned = check_dataset(spec, "dataset", problems, DATASET)
    problems.raise_if_any()
    return cleaned


def check_dataset(spec, path, problems, field):
    """A dataset spec checked by one of its fields (DATASET, or the web's, which names an
    upload by id), with the rules across its settings; fields.INVALID when unusable."""
    cleaned = field.clean(spec, path, problems)
    if cleaned is INVALID:
        return INVALID
    if cleaned["name"] == "synthetic":
        samples, classes, shape = cleaned["samples"], cleaned["classes"], cleaned["shape"]
        if samples < 5 * classes:
            problems.add(f"{path}.samples", f"Synthetic data needs at least 5 samples per "
                                            f"class: {5 * classes:,} for {classes} classes.")
            return INVALID
        if samples * math.prod(shape) > MAX_SYNTHETIC_VALUES:
            problems.add(path, f"Synthetic data of {samples:,} x {shape} is too large (limit "
                               f"{MAX_SYNTHETIC_VALUES:,} values).")
            return INVALID
    if cleaned["name"] == "npz" and "path" in cleaned and not os.path.isabs(cleaned["path"]):
        problems.add(f"{path}.path", "The path of an .npz must be absolute.")
        return INVALID
    if "directory" in cleaned and not os.path.isabs(cleaned["directory"]):
        problems.add(f"{path}.directory", "The dataset directory must be an absolute path.")
        return INVALID
    return cleaned


def describe(spec):
    """Shapes and sizes of a dataset (its subset, when it asks for one) without generating
    or loading it (npz files are read and checked); Invalid when the subset asks for more
    samples than there are."""
    spec = validate_dataset(spec)
    if spec["name"] == "npz":
        return with_subset(inspect_npz(spec["path"]), spec)
    if spec["name"] in public.PUBLIC:
        found = public.PUBLIC[spec["name"]]
        fit, val = _split_sizes(found.train_samples, VALIDATION_FRACTION)
        return with_subset(_description(found.input_shape, found.num_classes, fit, val,
                                        found.test_samples), spec)
    if spec["name"] == "digits":
        total, shape, classes = DIGITS_SAMPLES, list(DIGITS_SHAPE), 10
    else:
        total, shape, classes = spec["samples"], spec["shape"], spec["classes"]
    train, test = _split_sizes(total, TEST_FRACTION)
    fit, val = _split_sizes(train, VALIDATION_FRACTION)
    return with_subset(_description(shape, classes, fit, val, test), spec)


def with_subset(description, spec, path="dataset"):
    """The description of the subset the dataset spec asks for (train_samples, test_samples);
    Invalid, keyed by the setting's path, when it asks for more samples than there are.

    A description without validation_samples (an upload's, as the web stores it) counts
    the fewest training samples that leave its train_samples after the hold-out."""
    if "validation_samples" in description:
        train = description["train_samples"] + description["validation_samples"]
    else:
        train = _before_hold_out(description["train_samples"])
    test = description["test_samples"]
    messages = {}
    for key, available in (("train_samples", train), ("test_samples", test)):
        if spec.get(key, 0) > available:
            part = "training" if key == "train_samples" else "test"
            messages[f"{path}.{key}"] = [f"This dataset has {available:,} {part} samples; a "
                                         f"subset cannot ask for {spec[key]:,}."]
    if messages:
        raise Invalid(messages)
    fit, val = _split_sizes(spec.get("train_samples", train), VALIDATION_FRACTION)
    return {**description, "train_samples": fit, "validation_samples": val,
            "test_samples": spec.get("test_samples", test)}


def _before_hold_out(fit):
    total = fit
    while total - math.ceil(VALIDATION_FRACTION * total) < fit:
        total += 1
    return total


def validation_split(train_samples):
    """(fit, validation): how many of a dataset's training samples the engine trains on
    and how many it holds out for validation."""
    return _split_sizes(int(train_samples), VALIDATION_FRACTION)


def npz_train_samples(path):
    """The training samples an uploaded .npz holds (x_train's length), from its .npy
    header alone; ValueError if the file cannot be read."""
    archive, headers = _open_npz(path, MAX_UPLOAD_NPZ_BYTES)
    archive.close()
    return int(headers["x_train"].shape[0])


def inspect_npz(path):
    """Check an uploaded .npz in keras.datasets layout and describe it; ValueError if unusable.

    Shapes and dtypes come from the .npy headers; the arrays are read through a chunk at a
    time (which also verifies each member's CRC), never held whole."""
    archive, headers = _open_npz(path, MAX_UPLOAD_NPZ_BYTES)
    with archive:
        classes = _check_npz(headers, lambda key: _stream(archive, key, headers[key]))[2]
    x_train, x_test = headers["x_train"], headers["x_test"]
    fit, val = _split_sizes(len(x_train), VALIDATION_FRACTION)
    return _description(_sample_shape(x_train), classes, fit, val, len(x_test))


@dataclass(frozen=True)
class _Header:
    """An array as its .npy header declares it, and where its data starts in the member."""
    shape: tuple
    fortran_order: bool
    dtype: np.dtype
    offset: int

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def nbytes(self):
        return math.prod(self.shape) * self.dtype.itemsize

    def __len__(self):
        return self.shape[0]


def _check_npz(headers, chunks, keep_labels=False):
    """Check the arrays (each known by its header, its values given by chunks(key)) and
    return the labels as class indices (None unless keep_labels) and the class count.

    Labels may be class indices (N,) or (N, 1), or one-hot rows (N, classes)."""
    x_train, x_test = headers["x_train"], headers["x_test"]
    for key in NPZ_KEYS:
        if headers[key].dtype.kind not in "biuf":
            raise ValueError(
                f"{key} has dtype {headers[key].dtype}; only numeric arrays are accepted"
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
    labels, widths, ranges = {}, [], {}
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        shape = headers[y_key].shape
        _check_label_shape(y_key, shape)
        parts, lows, highs = [], [], []
        for chunk in chunks(y_key):
            y = _labels(chunk, y_key, shape)
            if len(y):
                lows.append(int(y.min()))
                highs.append(int(y.max()))
            if keep_labels:
                parts.append(y)
        if len(headers[y_key]) != len(headers[x_key]):
            raise ValueError(f"{x_key} has {len(headers[x_key])} samples but {y_key} has "
                             f"{len(headers[y_key])}")
        if keep_labels:
            labels[y_key] = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        if len(shape) == 2 and shape[1] >= 2:
            widths.append(int(shape[1]))
        ranges[y_key] = min(lows, default=None), max(highs, default=None)
    if len(x_train) < MIN_TRAIN_SAMPLES:
        raise ValueError(f"x_train has {len(x_train)} samples; at least {MIN_TRAIN_SAMPLES} needed")
    if len(x_test) < MIN_TEST_SAMPLES:
        raise ValueError(
            f"the test set has {len(x_test)} samples; at least {MIN_TEST_SAMPLES} are needed "
            "for a meaningful accuracy"
        )
    (train_low, train_high), test_high = ranges["y_train"], ranges["y_test"][1]
    if train_low == train_high:
        raise ValueError("y_train holds fewer than 2 classes; a classifier needs at least 2")
    # One-hot rows declare the classes; class indices imply them through y_train.
    classes = max([train_high + 1, *widths])
    if test_high >= classes:
        raise ValueError(
            f"y_test holds label {test_high}, out of the range of y_train's classes "
            f"(0..{classes - 1}); every test label must be a class the model trains on"
        )
    # Last, as the most expensive: every value of the inputs (and, for an upload, every
    # byte of their members) is read.
    for key in ("x_train", "x_test"):
        bad = 0
        for x in chunks(key):
            if x.dtype.kind == "f":
                bad += x.size - int(np.count_nonzero(np.isfinite(x)))
        if bad:
            raise ValueError(f"{key} holds {bad:,} NaN or infinite values; inputs must be "
                             "finite numbers")
    return labels.get("y_train"), labels.get("y_test"), classes


def _check_label_shape(key, shape):
    if len(shape) == 2 and shape[1] >= 2:
        if shape[1] > MAX_CLASSES:
            raise ValueError(f"{key} has {shape[1]:,} one-hot columns; at most "
                             f"{MAX_CLASSES:,} classes are accepted")
    elif not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise ValueError(f"{key} has shape {shape}; expected one integer label per sample")


def _labels(y, key, shape):
    """Labels (all of an array of the given shape, or some of its rows) as class indices
    (int32); ValueError if they are not class indices or one-hot rows."""
    if y.dtype.kind == "b":
        y = y.astype(np.int32)
    if len(shape) == 2 and shape[1] >= 2:
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise ValueError(f"{key} has shape {shape} but is not one-hot; give one class "
                             "index per sample, or rows with a single 1 and zeros elsewhere")
        return y.argmax(axis=1).astype(np.int32)
    y = y.reshape(len(y))
    if len(y) and not np.all(np.isfinite(y) & (np.asarray(y) == np.round(y))):
        raise ValueError(f"{key} holds non-integer labels; labels must be class indices")
    if len(y) and y.min() < 0:
        raise ValueError(f"{key} holds negative labels; labels must be 0, 1, 2, ...")
    if len(y) and y.max() >= MAX_CLASSES:
        raise ValueError(f"{key} holds label {y.max():.0f}; at most {MAX_CLASSES:,} classes "
                         f"(labels 0..{MAX_CLASSES - 1}) are accepted")
    return y.astype(np.int32)


def load(spec, seed):
    """Load a dataset: x float32 in [0, 1] with a channel axis for images, y int32.

    A public dataset is read from its cache directory; a missing file is a ValueError that
    says how to add it (nothing is downloaded)."""
    spec = validate_dataset(spec)
    if spec["name"] == "npz":
        arrays, headers = _read_npz(spec["path"])
        y_train, y_test, classes = _check_npz(headers, lambda key: (arrays[key],),
                                              keep_labels=True)
        x_train, x_test = arrays["x_train"], arrays["x_test"]
    elif spec["name"] in public.PUBLIC:
        x_train, y_train, x_test, y_test = public.load(
            spec["name"], spec.get("directory") or public.default_dir())
        classes = public.PUBLIC[spec["name"]].num_classes
    else:
        if spec["name"] == "digits":
            x, y, classes = _digits()
        else:
            x, y, classes = synthetic(spec)
        x_train, x_test, y_train, y_test = _split(x, y, TEST_FRACTION, seed)
    # The subset first, then the scaling: 50,000 CIFAR images are 600 MB as float32.
    with_subset(_description((), classes, len(x_train), 0, len(x_test)), spec)
    x_train, y_train = subset(x_train, y_train, spec.get("train_samples"), seed)
    x_test, y_test = subset(x_test, y_test, spec.get("test_samples"), seed)
    if spec["name"] not in ("digits", "synthetic"):  # those are generated scaled
        x_train, x_test = _scale(x_train), _scale(x_test)
    x_train, x_val, y_train, y_val = _split(x_train, y_train, VALIDATION_FRACTION, seed)
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, classes)


def subset(x, y, samples, seed):
    """``samples`` of (x, y), stratified by class and drawn with the seed (all when None)."""
    if samples is None or samples >= len(y):
        return x, y
    counts = np.bincount(y)
    # Stratifying needs two members of every class and room for each in the subset.
    stratify = y if counts[counts > 0].min() >= 2 else None
    try:
        x, _, y, _ = train_test_split(x, y, train_size=samples, random_state=seed,
                                      stratify=stratify)
    except ValueError:
        x, _, y, _ = train_test_split(x, y, train_size=samples, random_state=seed)
    return x, y


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


# What zipfile and numpy raise for a damaged, encrypted or oddly compressed member (numpy
# tokenizes a header that is not a Python literal).
_READ_ERRORS = (OSError, EOFError, KeyError, RuntimeError, SyntaxError, tokenize.TokenError,
                zipfile.BadZipFile, zlib.error)


def _read_npz(path):
    """The four arrays, loaded after the checks on their declared sizes, and their headers."""
    archive, headers = _open_npz(path, MAX_NPZ_BYTES)
    name = os.path.basename(path)
    arrays = {}
    with archive:
        for key in NPZ_KEYS:
            try:
                with archive.open(f"{key}.npy") as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
            except ValueError as exc:
                raise _pickle_error(name, exc) from None
            except _READ_ERRORS as exc:
                raise ValueError(f"{name} is not a readable .npz archive ({key}: {exc})") \
                    from None
    return arrays, headers


def _open_npz(path, limit):
    """The open archive and the headers of its four arrays, checked against limit (bytes)
    before any array data is read: the member count and sizes the zip declares first, then
    the shapes the .npy headers declare. The caller closes the archive."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    with open(path, "rb") as f:
        if f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX:
            raise ValueError(f"{name} is a single .npy array, not an .npz archive")
    directory = zip_directory(path)
    if directory is None:
        raise ValueError(f"{name} is not an .npz archive")
    check_directory(name, directory, MAX_NPZ_MEMBERS)
    try:
        archive = zipfile.ZipFile(path)
    except (ValueError, *_READ_ERRORS):
        raise ValueError(f"{name} is not an .npz archive") from None
    try:
        return archive, _check_members(name, archive, limit)
    except BaseException:
        archive.close()
        raise


def _check_members(name, archive, limit):
    infos = archive.infolist()
    if len(infos) > MAX_NPZ_MEMBERS:
        raise ValueError(f"{name} holds {len(infos):,} members; the limit is "
                         f"{MAX_NPZ_MEMBERS:,}.")
    unpacked = sum(info.file_size for info in infos)
    if unpacked > limit:
        raise ValueError(f"{name}'s members unpack to {unpacked:,} bytes; the limit is "
                         f"{limit:,}")
    members = {info.filename: info for info in infos}
    missing = [k for k in NPZ_KEYS if f"{k}.npy" not in members]
    if missing:
        raise ValueError(
            f"{name} lacks {', '.join(missing)}; expected arrays {', '.join(NPZ_KEYS)} "
            "(the keras.datasets layout)"
        )
    headers = {key: _read_header(name, archive, members[f"{key}.npy"]) for key in NPZ_KEYS}
    total = sum(header.nbytes for header in headers.values())
    if total > limit:
        raise ValueError(f"{name} unpacks to {total:,} bytes of arrays; the limit is "
                         f"{limit:,}")
    for key, header in headers.items():
        stored = members[f"{key}.npy"].file_size - header.offset
        if stored != header.nbytes:
            raise ValueError(f"{name} is not a readable .npz archive ({key}: its header "
                             f"declares {header.nbytes:,} bytes of data, the member holds "
                             f"{stored:,})")
    return headers


def _read_header(name, archive, info):
    """A member's .npy header, read without its data. Object arrays are refused here."""
    key = info.filename[:-len(".npy")]
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version not in readers:
                raise ValueError(f".npy format version {version}")
            shape, fortran_order, dtype = readers[version](member)
            offset = member.tell()
    except (ValueError, *_READ_ERRORS) as exc:
        raise ValueError(f"{name} is not a readable .npz archive ({key}: {exc})") from None
    if dtype.hasobject:
        raise ValueError(f"{name} contains Python objects; only plain numeric arrays are "
                         "accepted")
    if any(d < 0 for d in shape):
        raise ValueError(f"{name} is not a readable .npz archive ({key}: shape {shape})")
    return _Header(tuple(int(d) for d in shape), bool(fortran_order), dtype, offset)


def _stream(archive, key, header):
    """An array's values a chunk at a time: rows of labels, flat runs of anything else.

    Reading to the end of the member makes zipfile check its CRC, so a damaged file is
    refused although no array is ever held whole."""
    name = os.path.basename(archive.filename)
    labels = key in ("y_train", "y_test")
    row = math.prod(header.shape[1:]) if labels else 1
    unit = row * header.dtype.itemsize
    if unit == 0 or not header.nbytes:
        return
    if header.fortran_order and row > 1:
        # Column after column: rows of one-hot labels cannot be read a chunk at a time.
        raise ValueError(f"{name}: {key} is stored in Fortran order; save it in C order "
                         "(numpy.ascontiguousarray) to upload it")
    step = max(unit, READ_CHUNK_BYTES // unit * unit)
    try:
        with archive.open(f"{key}.npy") as member:
            member.read(header.offset)
            left = header.nbytes
            while left:
                raw = member.read(min(step, left))
                if not raw or len(raw) % unit:
                    raise EOFError("the data ends early")
                left -= len(raw)
                values = np.frombuffer(raw, dtype=header.dtype)
                yield values.reshape(-1, *header.shape[1:]) if labels else values
            member.read()
    except _READ_ERRORS as exc:
        raise ValueError(f"{name} is not a readable .npz archive ({key}: {exc})") from None


def _pickle_error(name, exc):
    # numpy refuses object arrays with allow_pickle=False; say what that means for the user.
    if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
        return ValueError(f"{name} contains Python objects; only plain numeric arrays are accepted")
    return ValueError(f"{name} is not a readable .npz archive ({exc})")
