"""The public datasets teams benchmark on (MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100), read
from the files of the upstream archives in a dataset cache directory.

Nothing here reaches the network. keras.datasets' load_data() calls get_file(), which
downloads again whenever a file is missing or its hash differs, so the engine never calls
it: it reads the files keras.datasets reads, in the same formats, from the directory it is
given (ACCELWEB_DATASET_DIR; Keras' own cache, ~/.keras/datasets, by default). Files get
there through ``manage.py dataset fetch NAME`` or ``manage.py dataset import NAME FILE``,
both of which verify the published SHA-256 first (``verify``, ``install``).

The layout is Keras' own, so a cache that keras.datasets filled works as it is: mnist.npz,
fashion-mnist/*.gz, and a CIFAR archive under its upstream name or the name get_file keeps
it under (cifar-10-batches-py-target_archive).
"""

import gzip
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
from dataclasses import dataclass

import numpy as np

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
CIFAR_ORIGIN = "https://www.cs.toronto.edu/~kriz/"
# The published SHA-256 of every upstream file, by its name. MNIST and CIFAR: keras'
# source (keras/src/datasets/*.py). Fashion-MNIST: keras publishes none; these are the
# digests TensorFlow Datasets lists for the same files (url_checksums).
SHA256 = {
    "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    "train-labels-idx1-ubyte.gz":
        "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    "train-images-idx3-ubyte.gz":
        "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    "t10k-labels-idx1-ubyte.gz":
        "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
    "t10k-images-idx3-ubyte.gz":
        "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    "cifar-100-python.tar.gz": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
}
IDX_LABELS, IDX_IMAGES = 2049, 2051  # the idx magic numbers: ubyte, 1 and 3 dimensions
CIFAR_SIDE = 32
# Globals a CIFAR batch may name when it is unpickled; see RestrictedUnpickler.
PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    # What Python 3 writes for bytes under pickle protocol 2 (a batch saved again).
    ("_codecs", "encode"),
})
MAX_IDX_ITEMS = 100_000_000
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Public:
    name: str
    title: str
    subdir: str  # under the cache directory, as keras.datasets keeps it
    files: tuple  # upstream file names
    origin: str  # the base URL the files are downloaded from
    input_shape: tuple
    num_classes: int
    train_samples: int
    test_samples: int
    aliases: tuple = ()  # other names of the (single) file in Keras' cache

    def directory(self, root):
        return os.path.join(root, self.subdir) if self.subdir else root


PUBLIC = {
    "mnist": Public("mnist", "MNIST (handwritten digits, 28x28 grayscale)", "",
                    ("mnist.npz",), KERAS_ORIGIN, (28, 28, 1), 10, 60_000, 10_000),
    "fashion_mnist": Public(
        "fashion_mnist", "Fashion-MNIST (Zalando articles, 28x28 grayscale)", "fashion-mnist",
        ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"),
        KERAS_ORIGIN, (28, 28, 1), 10, 60_000, 10_000),
    "cifar10": Public("cifar10", "CIFAR-10 (32x32 colour images, 10 classes)", "",
                      ("cifar-10-python.tar.gz",), CIFAR_ORIGIN, (32, 32, 3), 10, 50_000,
                      10_000, aliases=("cifar-10-batches-py-target_archive",)),
    "cifar100": Public("cifar100", "CIFAR-100 (32x32 colour images, 100 fine classes)", "",
                       ("cifar-100-python.tar.gz",), CIFAR_ORIGIN, (32, 32, 3), 100, 50_000,
                       10_000, aliases=("cifar-100-python-target_archive",)),
}


def default_dir():
    """ACCELWEB_DATASET_DIR, else Keras' own cache ($KERAS_HOME/datasets, ~/.keras/datasets)."""
    given = os.environ.get("ACCELWEB_DATASET_DIR")
    if given:
        return os.path.abspath(os.path.expanduser(given))
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.abspath(os.path.join(home, "datasets"))


def how_to_add(name):
    return (f"add it with `python manage.py dataset fetch {name}` (downloads it, on a machine "
            f"with internet access) or `python manage.py dataset import {name} FILE` (a copy "
            "you already have)")


def paths(name, root):
    """{upstream file name: the path it is read from, or None when it is not there}."""
    public = PUBLIC[name]
    folder = public.directory(root)
    found = {}
    for index, file in enumerate(public.files):
        names = (file, *public.aliases) if index == 0 and len(public.files) == 1 else (file,)
        found[file] = next((os.path.join(folder, candidate) for candidate in names
                            if os.path.isfile(os.path.join(folder, candidate))), None)
    return found


def missing_message(name, root):
    """Why the dataset cannot be read from root (its missing files and how to add them), or
    None when every file is there."""
    missing = [file for file, path in paths(name, root).items() if path is None]
    if not missing:
        return None
    public = PUBLIC[name]
    files = ", ".join(missing)
    return (f"{public.title.split(' (')[0]} is not on this server: {files} "
            f"{'is' if len(missing) == 1 else 'are'} missing from {public.directory(root)}; "
            f"{how_to_add(name)}.")


def status(root):
    """Each public dataset: present or not, what is missing, its shapes, sizes and files."""
    out = []
    for public in PUBLIC.values():
        found = paths(public.name, root)
        out.append({
            "name": public.name,
            "title": public.title,
            "present": all(found.values()),
            "missing": [file for file, path in found.items() if path is None],
            "missing_message": missing_message(public.name, root),
            "input_shape": list(public.input_shape),
            "num_classes": public.num_classes,
            "train_samples": public.train_samples,
            "test_samples": public.test_samples,
            "size_bytes": sum(os.path.getsize(path) for path in found.values() if path),
            "directory": public.directory(root),
            "fetch_command": f"python manage.py dataset fetch {public.name}",
            "import_command": f"python manage.py dataset import {public.name} "
                              f"{' '.join(public.files)}",
        })
    return out


# --- verifying and installing files (the management command's; no network here) --------

def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(file, path):
    """ValueError unless the file at path has the published SHA-256 of the upstream file."""
    expected, got = SHA256[file], sha256(path)
    if got != expected:
        raise ValueError(f"{os.path.basename(path)} is not the published {file}: its SHA-256 "
                         f"is {got}, expected {expected}. Refused; nothing was stored.")


def sources(name, given):
    """{upstream file name: the path among ``given`` (files, or a directory holding them)}
    that brings it; ValueError naming what is missing or not recognised."""
    public = PUBLIC[name]
    if len(given) == 1 and os.path.isdir(given[0]):
        folder = given[0]
        given = [os.path.join(folder, file) for file in public.files
                 if os.path.isfile(os.path.join(folder, file))]
        if not given:
            raise ValueError(f"{folder} holds none of {', '.join(public.files)}.")
    for path in given:
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such file.")
    if len(public.files) == 1:
        if len(given) != 1:
            raise ValueError(f"{name} is one file, {public.files[0]}; give exactly one.")
        return {public.files[0]: given[0]}
    found = {}
    for path in given:
        base = os.path.basename(path)
        if base not in public.files:
            raise ValueError(f"{base} is not one of the {name} files "
                             f"({', '.join(public.files)}).")
        found[base] = path
    missing = [file for file in public.files if file not in found]
    if missing:
        raise ValueError(f"{name} needs {len(public.files)} files; missing: "
                         f"{', '.join(missing)}.")
    return found


def install(name, files, root):
    """Verify every file ({upstream name: path}) against its published SHA-256, then copy
    them into root where the loader reads them. All or nothing: a mismatch stores none."""
    for file, path in files.items():
        verify(file, path)
    folder = PUBLIC[name].directory(root)
    os.makedirs(folder, exist_ok=True)
    for file, path in files.items():
        target = os.path.join(folder, file)
        if os.path.abspath(path) == os.path.abspath(target):
            continue
        # A copy under a temporary name, then a rename: a run never reads half a file.
        handle, temporary = tempfile.mkstemp(prefix=f".{file}.", dir=folder)
        try:
            with os.fdopen(handle, "wb") as out, open(path, "rb") as source:
                shutil.copyfileobj(source, out, CHUNK_BYTES)
            os.replace(temporary, target)
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise
    return [os.path.join(folder, file) for file in files]


# --- loading ---------------------------------------------------------------------------

def load(name, root):
    """(x_train, y_train, x_test, y_test) as keras.datasets returns them, channels last
    (uint8 images; labels int32, one per sample); ValueError when a file is missing or
    is not what it should be. Reads files only: nothing here can download."""
    message = missing_message(name, root)
    if message:
        raise ValueError(message)
    found = paths(name, root)
    if name == "mnist":
        return _mnist(found["mnist.npz"])
    if name == "fashion_mnist":
        return (_idx(found["train-images-idx3-ubyte.gz"], IDX_IMAGES),
                _idx(found["train-labels-idx1-ubyte.gz"], IDX_LABELS),
                _idx(found["t10k-images-idx3-ubyte.gz"], IDX_IMAGES),
                _idx(found["t10k-labels-idx1-ubyte.gz"], IDX_LABELS))
    (path,) = found.values()
    if name == "cifar10":
        members = ([f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
                   ["cifar-10-batches-py/test_batch"])
        return _cifar(path, *members, b"labels")
    return _cifar(path, ["cifar-100-python/train"], ["cifar-100-python/test"], b"fine_labels")


def _mnist(path):
    from runners.engine import data

    # allow_pickle=False, with data's checks of the declared sizes first.
    arrays, _ = data._read_npz(path)
    return (arrays["x_train"], _labels(arrays["y_train"], path),
            arrays["x_test"], _labels(arrays["y_test"], path))


def _labels(y, where):
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise ValueError(f"{os.path.basename(where)}: labels have dtype {y.dtype}, expected "
                         "integers")
    return y.reshape(len(y)).astype(np.int32)


def _idx(path, magic):
    """One idx-ubyte array from its .gz file, as keras.datasets.fashion_mnist reads it (the
    data after the header), with the header's magic number and sizes checked."""
    name = os.path.basename(path)
    dims = 1 if magic == IDX_LABELS else 3
    try:
        with gzip.open(path, "rb") as f:
            header = f.read(4 + 4 * dims)
            if len(header) < 4 + 4 * dims:
                raise ValueError(f"{name} ends inside its header")
            values = np.frombuffer(header, dtype=">u4")
            if int(values[0]) != magic:
                raise ValueError(f"{name} has magic number {int(values[0])}, expected {magic} "
                                 f"(an idx{dims}-ubyte file)")
            shape = tuple(int(d) for d in values[1:])
            count = int(np.prod(shape, dtype=np.int64))
            if count > MAX_IDX_ITEMS:
                raise ValueError(f"{name} declares {count:,} values; the limit is "
                                 f"{MAX_IDX_ITEMS:,}")
            raw = f.read(count + 1)
    except (OSError, EOFError) as exc:
        raise ValueError(f"{name} is not a readable gzip file ({exc})") from None
    if len(raw) != count:
        raise ValueError(f"{name} declares {count:,} values but holds "
                         f"{'more' if len(raw) > count else f'{len(raw):,}'}")
    array = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
    return array.astype(np.int32) if magic == IDX_LABELS else array


class RestrictedUnpickler(pickle.Unpickler):
    """CIFAR batches are Python pickles, and a pickle can run any code it names. The cache
    may hold a file that was never verified (Keras' own cache, a file copied in by hand), and
    hashing a 170 MB archive before every run costs seconds, so rather than trusting a
    checksum the batches are unpickled with this: it resolves only the globals a real batch
    names (numpy array reconstruction, as keras.datasets' own RestrictedUnpickler), and
    anything else (os.system, builtins.eval, ...) is refused before it is called."""

    def find_class(self, module, name):
        if (module, name) in PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch never "
                                     "does")


def _cifar(path, train, test, label_key):
    name = os.path.basename(path)
    try:
        with tarfile.open(path, "r:gz") as archive:
            parts = [[_batch(archive, member, label_key, name) for member in members]
                     for members in (train, test)]
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise ValueError(f"{name} is not a readable .tar.gz archive ({exc})") from None
    (x_train, y_train), (x_test, y_test) = (
        (np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]))
        for batches in parts)
    return x_train, y_train, x_test, y_test


def _batch(archive, member, label_key, name):
    where = f"{name}: {member}"
    try:
        info = archive.getmember(member)
    except KeyError:
        raise ValueError(f"{where} is missing from the archive") from None
    handle = archive.extractfile(info)
    if handle is None:
        raise ValueError(f"{where} is not a regular file")
    with handle:
        try:
            batch = RestrictedUnpickler(handle, encoding="bytes").load()
        except pickle.UnpicklingError as exc:
            raise ValueError(f"{where} was refused: {exc}. The file may be damaged or "
                             "malicious; import the published archive again.") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"{where} is not a readable CIFAR batch ({exc})") from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise ValueError(f"{where} is not a CIFAR batch (expected a dict with b'data' and "
                         f"{label_key!r})")
    data, labels = batch[b"data"], np.asarray(batch[label_key])
    side = CIFAR_SIDE * CIFAR_SIDE * 3
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != side:
        raise ValueError(f"{where}: data should be uint8 rows of {side} values")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise ValueError(f"{where}: {len(data)} images but labels of shape {labels.shape}")
    # Rows are 1024 red, 1024 green, 1024 blue values: channels first, as load_batch
    # reshapes them; keras.datasets then moves the channels last.
    images = data.reshape(len(data), 3, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1)
    return images, labels.astype(np.int32)
