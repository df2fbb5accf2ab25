"""wcodec's exceptions: one base class, subclasses by what went wrong.

Every exception carries ``code`` (the library's stable error code, as in
include/wcodec/wcodec.h), ``name`` (its short name) and the library's message,
which names the file, tensor and offset where they are known.
"""

from __future__ import annotations

import builtins

OK, IO, TRUNCATED, BAD_MAGIC, UNSUPPORTED_VERSION, CHECKSUM, CORRUPT, BAD_SAFETENSORS = range(8)
EXISTS, LIMIT, CODEC, USAGE, MISMATCH, NOT_FOUND = range(8, 14)

_NAMES = {
    IO: "I/O error", TRUNCATED: "truncated", BAD_MAGIC: "bad magic",
    UNSUPPORTED_VERSION: "unsupported version", CHECKSUM: "checksum mismatch", CORRUPT: "corrupt",
    BAD_SAFETENSORS: "invalid safetensors", EXISTS: "output exists", LIMIT: "limit exceeded",
    CODEC: "codec error", USAGE: "usage", MISMATCH: "mismatch", NOT_FOUND: "not found",
}


class Error(Exception):
    """Base class of every error wcodec raises."""

    code: int = -1

    def __init__(self, message: str, code: int | None = None):
        if code is not None:
            self.code = code
        self.message = message
        super().__init__(message)

    @property
    def name(self) -> str:
        return _NAMES.get(self.code, "unknown error")

    def __str__(self) -> str:
        return self.message


# Error comes first in each subclass's bases, so Error.__str__ (the message
# alone) wins over OSError's and KeyError's formatting.
class FileError(Error, builtins.OSError):
    """A file could not be opened, read or written (``code`` IO)."""
    code = IO


class ExistsError(FileError):
    """The output exists and overwriting was not asked for."""
    code = EXISTS


class FormatError(Error, builtins.ValueError):
    """The input is not a valid container (or safetensors file)."""
    code = CORRUPT


class TruncatedError(FormatError):
    code = TRUNCATED


class BadMagicError(FormatError):
    code = BAD_MAGIC


class UnsupportedError(FormatError):
    """Written by a newer version: a format version, codec or representation this build does not know."""
    code = UNSUPPORTED_VERSION


class ChecksumError(FormatError):
    """Stored bytes do not match their checksum (damaged or altered)."""
    code = CHECKSUM


class CodecError(FormatError):
    code = CODEC


class SafetensorsError(FormatError):
    code = BAD_SAFETENSORS


class LimitError(Error):
    """A size or count beyond a limit, or memory ran out."""
    code = LIMIT


class UsageError(Error, builtins.ValueError):
    """Bad arguments."""
    code = USAGE


class MismatchError(Error):
    code = MISMATCH


class NotFoundError(Error, builtins.KeyError):
    """No tensor or file of that name."""
    code = NOT_FOUND


_BY_CODE = {
    IO: FileError, EXISTS: ExistsError, TRUNCATED: TruncatedError, BAD_MAGIC: BadMagicError,
    UNSUPPORTED_VERSION: UnsupportedError, CHECKSUM: ChecksumError, CORRUPT: FormatError,
    CODEC: CodecError, BAD_SAFETENSORS: SafetensorsError, LIMIT: LimitError, USAGE: UsageError,
    MISMATCH: MismatchError, NOT_FOUND: NotFoundError,
}


def from_code(code: int, message: str) -> Error:
    """The exception for a C error code (used by the binding)."""
    if code == EXISTS:  # the library's hint names the tool's flag
        message = message.replace("use -f to overwrite", "pass force=True to overwrite")
    return _BY_CODE.get(code, Error)(message, code)
