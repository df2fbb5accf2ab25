"""``wcodec.numpy``: load and save .wcz containers as numpy arrays, mirroring
``safetensors.numpy``. BF16 and FP8 arrays use ml_dtypes (``pip install
ml_dtypes``); without it they raise an error that names the fix."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._errors import UsageError

_PLAIN = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16,
    "U32": np.uint32, "I32": np.int32, "U64": np.uint64, "I64": np.int64,
    "F16": np.float16, "F32": np.float32, "F64": np.float64, "C64": np.complex64,
}
_ML_DTYPES = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu"}


def dtype_of(name: str) -> np.dtype:
    """The numpy dtype of a safetensors dtype name."""
    if name in _PLAIN:
        return np.dtype(_PLAIN[name])
    if name in _ML_DTYPES:
        try:
            import ml_dtypes
        except ImportError:
            raise UsageError(f"{name} tensors need the ml_dtypes package for numpy (pip install ml_dtypes), "
                             "or load them with wcodec.torch", 11) from None
        return np.dtype(getattr(ml_dtypes, _ML_DTYPES[name]))
    raise UsageError(f"numpy has no dtype for {name} tensors (sub-byte floats): use wcodec unpack", 11)


class _Numpy(_core.Backend):
    def empty(self, shape, dtype):
        a = np.empty(tuple(shape), dtype=dtype_of(dtype))
        return a, a.ctypes.data, a.nbytes


BACKEND = _Numpy()


def load_file(filename, *, file: str | None = None, threads: int = 0, level: int | None = None,
              step: int | None = None, budget: str | int | None = None) -> dict[str, np.ndarray]:
    """Every tensor of the container (of its stored safetensors file `file`,
    when it holds several whose names collide), decoded in parallel straight
    into new arrays. `level`, `step`, `budget`: as wcodec.torch.load_file
    (a container of levels read at a budget, a step or a level); default
    every tensor at its top (the original)."""
    with _core.Container(filename) as c:
        return _core.load(c, BACKEND, c.model_tensors(file), threads=threads, level=level,
                          step=_core.resolve_step(c, step, budget))


def load(data: bytes, *, file: str | None = None, threads: int = 0) -> dict[str, np.ndarray]:
    """The same from a container held in memory (bytes, bytearray, mmap)."""
    with _core.Container(data) as c:
        return _core.load(c, BACKEND, c.model_tensors(file), threads=threads)


def _serialize(tensors, metadata):
    from safetensors.numpy import save
    return save(dict(tensors), metadata=metadata)


def save_file(tensors: dict[str, np.ndarray], filename, metadata: dict[str, str] | None = None,
              **options: Any) -> dict:
    """Writes a container holding the safetensors file that
    ``safetensors.numpy.save_file`` would write (stored as
    ``wcodec._core.stored_name_for(filename)``): the same bytes ``wcodec pack``
    makes of that file. Replaces an existing file (force=False keeps it);
    pack options (bits, codec, ...) pass through."""
    return _core.save(_serialize, tensors, filename, metadata, **options)


def save(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None, **options: Any) -> bytes:
    """The container as bytes (through a temporary file)."""
    return _core.save_to_bytes(save_file, tensors, metadata, **options)
