"""`manage.py dataset list | fetch | import`: files verified against their published SHA-256
before they are stored in ACCELWEB_DATASET_DIR; fetch from a mirror served here on
127.0.0.1."""

import functools
import http.server
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from public_archives import sha256, write

from runners.engine import public


@pytest.fixture
def cache(settings, tmp_path):
    settings.ACCELWEB_DATASET_DIR = tmp_path / "cache"
    settings.ACCELWEB_DATASET_MIRROR = ""
    return settings.ACCELWEB_DATASET_DIR


@pytest.fixture
def own_digests(monkeypatch):
    """Trust the test's own files, in this process only: the published digests are of the
    real archives, which the tests do not have."""
    def trust(paths):
        for path in paths:
            monkeypatch.setitem(public.SHA256, path.name, sha256(path))
        return paths

    return trust


def dataset(*args):
    out = StringIO()
    call_command("dataset", *[str(arg) for arg in args], stdout=out)
    return out.getvalue()


def test_it_refuses_an_import_whose_checksum_differs(cache, tmp_path):
    (path,) = write("mnist", tmp_path / "mine")
    with pytest.raises(CommandError) as caught:
        dataset("import", "mnist", path)
    message = str(caught.value)
    assert f"its SHA-256 is {sha256(path)}, expected {public.SHA256['mnist.npz']}" in message
    assert "Refused; nothing was stored." in message
    assert not (cache / "mnist.npz").exists()


def test_it_imports_a_verified_file_where_the_loader_reads_it(cache, tmp_path, own_digests):
    (path,) = own_digests(write("mnist", tmp_path / "mine"))
    out = dataset("import", "mnist", path)
    assert f"Stored {cache / 'mnist.npz'} (SHA-256 verified)." in out
    assert (cache / "mnist.npz").read_bytes() == path.read_bytes()
    assert public.load("mnist", str(cache))[0].shape == (60, 28, 28)


def test_it_imports_fashion_mnist_from_a_directory_of_its_four_files(cache, tmp_path,
                                                                     own_digests):
    own_digests(write("fashion_mnist", tmp_path / "mine"))
    dataset("import", "fashion_mnist", tmp_path / "mine" / "fashion-mnist")
    assert sorted(p.name for p in (cache / "fashion-mnist").iterdir()) == \
        sorted(public.PUBLIC["fashion_mnist"].files)
    assert public.missing_message("fashion_mnist", str(cache)) is None


def test_it_stores_none_of_fashion_mnist_when_one_file_differs(cache, tmp_path, own_digests,
                                                              monkeypatch):
    paths = own_digests(write("fashion_mnist", tmp_path / "mine"))
    monkeypatch.setitem(public.SHA256, "t10k-labels-idx1-ubyte.gz", "0" * 64)
    with pytest.raises(CommandError, match="not the published t10k-labels-idx1-ubyte.gz"):
        dataset("import", "fashion_mnist", *paths)
    assert not (cache / "fashion-mnist").exists()


def test_it_says_which_fashion_mnist_files_are_missing(cache, tmp_path):
    paths = write("fashion_mnist", tmp_path / "mine")
    with pytest.raises(CommandError, match="fashion_mnist needs 4 files; missing: "
                                           "t10k-images-idx3-ubyte.gz"):
        dataset("import", "fashion_mnist", *paths[:3])


@pytest.fixture
def mirror(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/mirror; its base URL."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/files"
    server.shutdown()
    server.server_close()
    thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def translate_path(self, path):
        # The mirror's files live under /files/, as a team's mirror may nest them.
        return super().translate_path(path.removeprefix("/files"))

    def log_message(self, *args):
        pass


def test_it_fetches_from_a_mirror_with_progress_and_stores_verified_files(
        cache, mirror, own_digests):
    folder, url = mirror
    (path,) = own_digests(write("cifar10", folder))
    out = dataset("fetch", "cifar10", "--mirror", url)
    assert f"Downloading {url}/cifar-10-python.tar.gz" in out
    assert "(100%)" in out
    assert (cache / "cifar-10-python.tar.gz").read_bytes() == path.read_bytes()
    assert public.load("cifar10", str(cache))[0].shape == (100, 32, 32, 3)
    # Nothing but the file itself is left behind.
    assert [p.name for p in cache.iterdir()] == ["cifar-10-python.tar.gz"]


def test_it_takes_the_mirror_from_the_setting(cache, mirror, own_digests, settings):
    folder, url = mirror
    own_digests(write("mnist", folder))
    settings.ACCELWEB_DATASET_MIRROR = url
    dataset("fetch", "mnist")
    assert (cache / "mnist.npz").is_file()


def test_it_refuses_a_fetched_file_whose_checksum_differs(cache, mirror):
    folder, url = mirror
    write("cifar100", folder)
    with pytest.raises(CommandError) as caught:
        dataset("fetch", "cifar100", "--mirror", url)
    assert f"expected {public.SHA256['cifar-100-python.tar.gz']}" in str(caught.value)
    assert f"(downloaded from {url}/)" in str(caught.value)
    assert list(cache.iterdir()) == []


def test_it_says_when_the_mirror_lacks_the_file(cache, mirror):
    _, url = mirror
    with pytest.raises(CommandError, match=r"Downloading .*/mnist.npz failed: HTTP 404"):
        dataset("fetch", "mnist", "--mirror", url)


def test_it_lists_what_is_present_and_how_to_add_the_rest(cache, tmp_path, own_digests):
    (path,) = own_digests(write("mnist", tmp_path / "mine"))
    dataset("import", "mnist", path)
    out = dataset("list")
    assert f"Dataset cache: {cache}" in out
    mnist = next(line for line in out.splitlines() if line.startswith("mnist "))
    assert "28x28x1" in mnist and "60,000 train" in mnist and "present" in mnist
    cifar = next(line for line in out.splitlines() if line.startswith("cifar10 "))
    assert "missing cifar-10-python.tar.gz" in cifar
    assert "python manage.py dataset fetch cifar10" in out
