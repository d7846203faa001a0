"""An upload handler that stops storing a file once it passes ACCELWEB_MAX_UPLOAD_BYTES.

The forms compare upload.size too, but only after Django has written the whole file to a
temporary file; this handler runs first in FILE_UPLOAD_HANDLERS and skips the file at the
first chunk past the limit, so at most the limit reaches the disk."""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile


class SizeLimitUploadHandler(FileUploadHandler):
    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.ACCELWEB_MAX_UPLOAD_BYTES:
            # A skipped file is left out of request.FILES, where it would read as no file
            # at all; the request remembers it so the form can say why.
            self.request._files_over_limit = {*files_over_limit(self.request), self.field_name}
            raise SkipFile
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler holds the file


def files_over_limit(request) -> frozenset[str]:
    """The file fields whose files SizeLimitUploadHandler left out of request.FILES, once
    request.FILES has been read."""
    return frozenset(getattr(request, "_files_over_limit", ()))
