"""``manage.py dataset list | fetch NAME [--mirror URL] | import NAME FILE...``: the public
datasets' files in the dataset cache (ACCELWEB_DATASET_DIR), which runs read and never
download. Every file is checked against its published SHA-256 before it is stored."""

import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from runners.engine import public

DOWNLOAD_TIMEOUT = 60
CHUNK_BYTES = 1024 * 1024


class Command(BaseCommand):
    help = ("List, download or import the public datasets (mnist, fashion_mnist, cifar10, "
            "cifar100) that experiments read from the dataset cache.")

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="action", required=True)
        commands.add_parser("list", help="which datasets are present, with shapes and sizes")
        fetch = commands.add_parser("fetch", help="download a dataset's files (needs internet)")
        fetch.add_argument("name", choices=list(public.PUBLIC))
        fetch.add_argument("--mirror", help="base URL to download the files from instead of "
                                            "the upstream origin (ACCELWEB_DATASET_MIRROR)")
        add = commands.add_parser("import", help="store a dataset's files you already have")
        add.add_argument("name", choices=list(public.PUBLIC))
        add.add_argument("files", nargs="+", metavar="FILE",
                         help="the upstream archive (fashion_mnist: its four .gz files, or a "
                              "directory holding them)")

    def handle(self, *args, action, **options):
        root = str(settings.ACCELWEB_DATASET_DIR)
        if action == "list":
            return self._list(root)
        name = options["name"]
        if action == "import":
            try:
                files = public.sources(name, options["files"])
                stored = public.install(name, files, root)
            except (ValueError, OSError) as exc:
                raise CommandError(str(exc)) from None
        else:
            stored = self._fetch(name, root, options.get("mirror")
                                 or settings.ACCELWEB_DATASET_MIRROR)
        for path in stored:
            self.stdout.write(f"Stored {path} (SHA-256 verified).")
        self.stdout.write(self.style.SUCCESS(f"{name} is ready to use."))

    def _list(self, root):
        self.stdout.write(f"Dataset cache: {root}")
        for found in public.status(root):
            shape = "x".join(str(side) for side in found["input_shape"])
            state = (f"present, {filesizeformat(found['size_bytes'])}" if found["present"]
                     else f"missing {', '.join(found['missing'])}")
            self.stdout.write(f"{found['name']:<14} {shape:<8} {found['num_classes']:>3} classes "
                              f"{found['train_samples']:>6,} train {found['test_samples']:>6,} "
                              f"test  {state}")
            if not found["present"]:
                self.stdout.write(f"{'':<14} add: {found['fetch_command']}  or  "
                                  f"{found['import_command']}")

    def _fetch(self, name, root, mirror):
        found = public.PUBLIC[name]
        base = mirror or found.origin
        if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
            raise CommandError(f"The mirror must be an http or https URL (got {base!r}).")
        base = base if base.endswith("/") else base + "/"
        os.makedirs(root, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as folder:
            files = {file: self._download(base + file, os.path.join(folder, file))
                     for file in found.files}
            try:
                return public.install(name, files, root)
            except ValueError as exc:
                raise CommandError(f"{exc} (downloaded from {base})") from None

    def _download(self, url, path):
        self.stdout.write(f"Downloading {url}")
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, \
                    open(path, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                done, shown = 0, -1
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    out.write(chunk)
                    done += len(chunk)
                    step = done * 10 // total if total else done // (16 * CHUNK_BYTES)
                    if step != shown:
                        shown = step
                        of = f" of {filesizeformat(total)} ({done * 100 // total}%)" \
                            if total else ""
                        self.stdout.write(f"  {filesizeformat(done)}{of}")
        except urllib.error.HTTPError as exc:
            raise CommandError(f"Downloading {url} failed: HTTP {exc.code} {exc.reason}.") \
                from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CommandError(f"Downloading {url} failed: {reason}. Without internet "
                               "access, copy the file here and use `manage.py dataset "
                               "import`.") from None
        return path
