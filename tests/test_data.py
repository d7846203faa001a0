"""Datasets: sizes described without loading, splits as loaded, and uploads refused clearly."""

import io
import os
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from runners.engine import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    # Read a chunk of rows at a time at upload, which column-major one-hot rows cannot be.
    ({"y_train": np.asfortranarray(np.eye(3)[np.arange(60) % 3])},
     r"upload.npz: y_train is stored in Fortran order; save it in C order"),
    ({"x_train": np.asfortranarray(np.ones((60, 6, 6), np.float32))}, None),
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
    # Checked from the sizes the zip declares, before any member is opened: the upload's
    # limit by the upload check, the run's by the engine's load.
    monkeypatch.setattr(data, "MAX_UPLOAD_NPZ_BYTES", 1_000_000)
    with pytest.raises(ValueError, match=r"bomb.npz's members unpack to 1,377,344 bytes; "
                                         r"the limit is 1,000,000"):
        data.inspect_npz(str(path))
    monkeypatch.setattr(data, "MAX_NPZ_BYTES", 1_000_000)
    with pytest.raises(ValueError, match=r"bomb.npz's members unpack to 1,377,344 bytes; "
                                         r"the limit is 1,000,000"):
        data.load({"name": "npz", "path": str(path)}, seed=0)


MIB = 1024**2


def npy(array=None, *, shape=None, dtype=np.uint8):
    """An .npy member: the array's, or just a header declaring shape (its data left out)."""
    buffer = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(buffer, np.asarray(array))
    else:
        header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def small_arrays():
    return {"x_train": npy(np.zeros((60, 6, 6), np.uint8)), "y_train": npy(np.arange(60) % 3),
            "x_test": npy(np.zeros((12, 6, 6), np.uint8)), "y_test": npy(np.arange(12) % 3)}


def deflated_zeros(size, prefix=b""):
    """prefix and size zero bytes as a raw deflate stream, with their CRC and length, made
    in a fraction of the time zlib takes to compress them: after a full flush, every MiB of
    zeros compresses to the same bytes."""
    assert size % MIB == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for _ in range(size // MIB):
        crc = zlib.crc32(bytes(MIB), crc)
    return head + block * (size // MIB) + compressor.flush(), crc, len(prefix) + size


def stored(content):
    return content, zlib.crc32(content), len(content)


def write_zip(path, members):
    """A zip of {name: (data, crc, size)}, data written as given: deflated when it is
    shorter than size, else stored. zipfile cannot write data it did not compress itself,
    and writing 100,000 members with it takes seconds."""
    local, central = bytearray(), bytearray()
    for name, (content, crc, size) in members.items():
        method = zipfile.ZIP_DEFLATED if len(content) != size else zipfile.ZIP_STORED
        encoded = name.encode()
        fields = (20, 0, method, 0, 0x21, crc, len(content), size, len(encoded))
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0,
                               0, len(local)) + encoded
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields, 0) + encoded + content
    count, end = len(members), bytearray()
    if count > 0xFFFF:  # zip64 end records, as zipfile writes them
        at = len(local) + len(central)
        end += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                           len(central), len(local))
        end += struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
        count = 0xFFFF
    end += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central),
                       len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return str(path)


def refusal(inspect, path):
    """The message, seconds and traced peak memory of refusing path."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ValueError) as caught:
            inspect(path)
        return str(caught.value), time.perf_counter() - started, \
            tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_it_refuses_an_npz_whose_headers_declare_2_gb(tmp_path):
    members = {f"{key}.npy": stored(content) for key, content in small_arrays().items()}
    # 2 GB of images declared in a 128-byte header, with almost none of their data.
    members["x_train.npy"] = stored(npy(shape=(2_551_021, 28, 28)) + bytes(1000))
    members["x_test.npy"] = stored(npy(shape=(12, 28, 28)) + bytes(12 * 28 * 28))
    path = write_zip(tmp_path / "liar.npz", members)
    assert os.path.getsize(path) < 20_000

    message, seconds, peak = refusal(data.inspect_npz, path)

    assert message == ("liar.npz unpacks to 2,000,010,448 bytes of arrays; the limit is "
                       "1,073,741,824")
    assert seconds < 1 and peak < 1 * MIB
    # Under a run's larger limit, the data missing behind the header is what refuses it.
    with pytest.raises(ValueError, match=r"liar.npz is not a readable .npz archive \(x_train: "
                                         r"its header declares 2,000,000,464 bytes of data, "
                                         r"the member holds 1,000\)"):
        data.load({"name": "npz", "path": path}, seed=0)


def test_it_refuses_an_npz_whose_header_disagrees_with_its_data(tmp_path):
    # Under the limits, but the data is shorter than the header says: refused before numpy
    # would allocate the whole array and read into it.
    members = {f"{key}.npy": stored(content) for key, content in small_arrays().items()}
    members["x_train.npy"] = stored(npy(shape=(60, 6, 6)) + bytes(100))
    path = write_zip(tmp_path / "short.npz", members)

    for check in (data.inspect_npz, lambda p: data.load({"name": "npz", "path": p}, seed=0)):
        with pytest.raises(ValueError, match=r"short.npz is not a readable .npz archive "
                                             r"\(x_train: its header declares 2,160 bytes of "
                                             r"data, the member holds 100\)"):
            check(path)


def test_it_refuses_an_npz_with_100000_members(tmp_path):
    members = {f"{key}.npy": stored(content) for key, content in small_arrays().items()}
    members.update({f"{i}.npy": stored(b"") for i in range(100_000)})
    path = write_zip(tmp_path / "many.npz", members)

    message, seconds, peak = refusal(data.inspect_npz, path)

    assert message == "many.npz holds 100,004 members; the limit is 64."
    # Counted from the zip's end record: zipfile would spend 60 MB parsing the directory.
    assert seconds < 1 and peak < 1 * MIB


def test_it_refuses_an_npz_zip_bomb(tmp_path):
    members = {f"{key}.npy": stored(content) for key, content in small_arrays().items()}
    # 1.5 GiB of zeros in a 1.5 MB file.
    members["x_train.npy"] = deflated_zeros(1536 * MIB, prefix=npy(shape=(1536 * MIB,)))
    path = write_zip(tmp_path / "bomb.npz", members)
    assert os.path.getsize(path) < 2 * MIB

    message, seconds, peak = refusal(data.inspect_npz, path)

    assert message == "bomb.npz's members unpack to 1,610,614,256 bytes; the limit is " \
                      "1,073,741,824"
    assert seconds < 1 and peak < 1 * MIB


def test_it_refuses_a_damaged_npz_at_upload(tmp_path):
    # The inputs are never loaded at upload, but read through: their CRCs are checked.
    path = tmp_path / "damaged.npz"
    np.savez(path, x_train=np.full((60, 6, 6), 7, np.uint8), y_train=np.arange(60) % 3,
             x_test=np.zeros((12, 6, 6), np.uint8), y_test=np.arange(12) % 3)
    content = bytearray(path.read_bytes())
    content[content.index(bytes([7] * 64))] = 8
    path.write_bytes(bytes(content))

    with pytest.raises(ValueError, match=r"damaged.npz is not a readable .npz archive "
                                         r"\(x_train: Bad CRC-32"):
        data.inspect_npz(str(path))


MEASURE = textwrap.dedent("""
    import resource, sys
    from runners.engine import data

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    described = data.inspect_npz(sys.argv[1])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(before, after, described["train_samples"], described["input_shape"])
""")


def test_it_describes_a_large_npz_without_loading_it(tmp_path):
    path = tmp_path / "large.npz"
    # 200 MB of float32 images: every value is checked for NaN, a chunk at a time.
    x_train = np.full((16_384, 32, 32, 3), 0.5, np.float32)
    np.savez(path, x_train=x_train, y_train=np.arange(16_384) % 10,
             x_test=x_train[:1000], y_test=np.arange(1000) % 10)
    del x_train
    scratch = tmp_path / "tmp"
    scratch.mkdir()

    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TMPDIR": str(scratch)})

    before, after, train_samples, shape = done.stdout.strip().split(maxsplit=3)
    assert (train_samples, shape) == ("14745", "[32, 32, 3]")
    # ru_maxrss is in KiB: the process grew by a few chunks, not by the 200 MB of x_train.
    assert (int(after) - int(before)) * 1024 < 32 * MIB
    assert list(scratch.iterdir()) == []


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
    with pytest.raises(ValueError, match="Dataset name must be one of digits, synthetic, mnist, "
                                         "fashion_mnist, cifar10, cifar100, npz"):
        data.describe({"name": "imagenet"})
    with pytest.raises(ValueError, match="Classes must be between 2 and 1,000 \\(got 1\\)"):
        data.describe({"name": "synthetic", "classes": 1})
    with pytest.raises(ValueError, match="The path of an .npz must be absolute"):
        data.describe({"name": "npz", "path": "relative.npz"})
    with pytest.raises(ValueError, match="'path' is required"):
        data.describe({"name": "npz"})
    with pytest.raises(ValueError, match="at least 5 samples per class: 1,000 for 200 classes"):
        data.describe({"name": "synthetic", "classes": 200, "samples": 999})
    with pytest.raises(ValueError, match="Unknown setting 'sample' for dataset "
                                         "\\(did you mean 'samples'\\?\\)"):
        data.describe({"name": "synthetic", "sample": 999})
