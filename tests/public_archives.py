"""Tiny copies of the public datasets' upstream files, in their exact formats, for the tests:
mnist.npz (uint8 arrays, as keras.datasets ships it), Fashion-MNIST's four idx-ubyte .gz
files (big-endian headers with the idx magic numbers), and the CIFAR python archives (a
.tar.gz of pickled dicts with b"data" rows of 3072 uint8 values and a label list, as the
Toronto files hold them). Labels cycle through the classes, so every class is present and
a stratified subset has a known answer."""

import gzip
import hashlib
import io
import pickle
import struct
import tarfile

import numpy as np

CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}


def images(count, shape, seed):
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def labels(count, classes):
    return (np.arange(count) % classes).astype(np.uint8)


def write_mnist(folder, train=60, test=20):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mnist.npz"
    np.savez_compressed(path, x_train=images(train, (28, 28), 0), y_train=labels(train, 10),
                        x_test=images(test, (28, 28), 1), y_test=labels(test, 10))
    return [path]


def idx_bytes(array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return gzip.compress(header + array.tobytes())


def write_fashion_mnist(folder, train=60, test=20):
    """The four files, in folder (Keras keeps them under datasets/fashion-mnist/)."""
    folder.mkdir(parents=True, exist_ok=True)
    content = {
        "train-labels-idx1-ubyte.gz": idx_bytes(labels(train, 10), 2049),
        "train-images-idx3-ubyte.gz": idx_bytes(images(train, (28, 28), 2), 2051),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(labels(test, 10), 2049),
        "t10k-images-idx3-ubyte.gz": idx_bytes(images(test, (28, 28), 3), 2051),
    }
    paths = []
    for name, data in content.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


def cifar_batch(count, classes, seed, label_key=b"labels", extra=None):
    """One batch as the Toronto files hold it (pickle protocol 2, as Python 2 wrote it)."""
    data = images(count, (3 * 32 * 32,), seed)
    batch = {b"batch_label": b"testing batch", label_key: [int(y) for y in
                                                          labels(count, classes)],
             b"data": data, b"filenames": [b"img_%d.png" % i for i in range(count)]}
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [int(y) // 5 for y in batch[label_key]]
    batch.update(extra or {})
    return pickle.dumps(batch, protocol=2)


def tar_gz(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_cifar10(folder, per_batch=20, test=20, members=None):
    folder.mkdir(parents=True, exist_ok=True)
    content = {f"cifar-10-batches-py/data_batch_{i}": cifar_batch(per_batch, 10, i)
               for i in range(1, 6)}
    content["cifar-10-batches-py/test_batch"] = cifar_batch(test, 10, 9)
    content["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {b"label_names": [b"class%d" % i for i in range(10)]}, protocol=2)
    content.update(members or {})
    path = folder / "cifar-10-python.tar.gz"
    path.write_bytes(tar_gz(content))
    return [path]


def write_cifar100(folder, train=200, test=100):
    folder.mkdir(parents=True, exist_ok=True)
    content = {
        "cifar-100-python/train": cifar_batch(train, 100, 4, b"fine_labels"),
        "cifar-100-python/test": cifar_batch(test, 100, 5, b"fine_labels"),
        "cifar-100-python/meta": pickle.dumps(
            {b"fine_label_names": [b"f%d" % i for i in range(100)],
             b"coarse_label_names": [b"c%d" % i for i in range(20)]}, protocol=2),
    }
    path = folder / "cifar-100-python.tar.gz"
    path.write_bytes(tar_gz(content))
    return [path]


WRITERS = {"mnist": write_mnist, "fashion_mnist": write_fashion_mnist,
           "cifar10": write_cifar10, "cifar100": write_cifar100}


def write(name, cache):
    """Write the dataset's files where the loader reads them under the cache directory."""
    folder = cache / "fashion-mnist" if name == "fashion_mnist" else cache
    return WRITERS[name](folder)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()
