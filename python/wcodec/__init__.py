"""wcodec: compact, bit-exact storage for model weights.

    import wcodec.torch
    tensors = wcodec.torch.load_file("model.safetensors.wcz")

    with wcodec.safe_open("model.safetensors.wcz", framework="pt") as f:
        w = f.get_slice("lm_head.weight")[0:128]   # decodes only those rows

``wcodec.numpy`` and ``wcodec.torch`` mirror ``safetensors.numpy`` and
``safetensors.torch``; ``pack``, ``unpack`` and ``verify`` do what the
``wcodec`` tool does. Errors are ``wcodec.Error`` subclasses.
"""

from __future__ import annotations

from . import _wcodec
from ._core import Container, FileInfo, TensorInfo, pack, pack_bytes, unpack, verify
from ._errors import (BadMagicError, ChecksumError, CodecError, Error, ExistsError, FileError, FormatError,
                      LimitError, MismatchError, NotFoundError, SafetensorsError, TruncatedError,
                      UnsupportedError, UsageError)

__version__ = _wcodec.version()

__all__ = [
    "safe_open", "pack", "pack_bytes", "unpack", "verify", "Container", "TensorInfo", "FileInfo",
    "Error", "FileError", "ExistsError", "FormatError", "TruncatedError", "BadMagicError", "UnsupportedError",
    "ChecksumError", "CodecError", "SafetensorsError", "LimitError", "UsageError", "MismatchError",
    "NotFoundError",
]


def safe_open(filename, framework: str = "pt", device="cpu", *, file: str | None = None, level: int | None = None,
              step: int | None = None, budget: str | int | None = None):
    """Opens a container lazily, as ``safetensors.safe_open``: keys(),
    metadata(), get_tensor(name), get_slice(name)[a:b]. `framework`: "pt"
    (or "torch") or "np" (or "numpy"). A container of levels (pack(...,
    refine=R) or exact=True) is read at the step `budget` affords ("512MB",
    "4.25bpw": the model of the longest prefix that fits), at model step
    `step`, or with each tensor at min(`level`, its top); default every
    tensor at its top."""
    from ._core import SafeOpen
    if framework in ("pt", "torch"):
        from .torch import BACKEND
    elif framework in ("np", "numpy"):
        from .numpy import BACKEND
    else:
        raise UsageError(f"framework {framework!r} is not supported (use 'pt' or 'np')", 11)
    return SafeOpen(filename, BACKEND, device, file, level, step, budget)
