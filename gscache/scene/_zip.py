"""What Python's zipfile raises for damaged archives (.npz, .sog): the readers turn each of these
into a GscacheError that names the file and the member."""

import lzma
import zipfile
import zlib

ZIP_ERRORS = (
    zipfile.BadZipFile,  # bad magic, CRC, names that differ between directory and header
    zlib.error, lzma.LZMAError, EOFError,  # damaged deflate / lzma streams, cut short
    NotImplementedError,  # a version or compression method zipfile does not know
    RuntimeError,  # an encrypted member ("password required")
    ValueError, OSError,
)
