"""``wcodec.torch``: load and save .wcz containers as torch tensors,
mirroring ``safetensors.torch``."""

from __future__ import annotations

from typing import Any

import torch

from . import _core
from ._errors import UsageError

_DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "I32": torch.int32,
    "I64": torch.int64, "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32,
    "F64": torch.float64, "C64": torch.complex64,
}
for _name, _attr in (("U16", "uint16"), ("U32", "uint32"), ("U64", "uint64"), ("F8_E4M3", "float8_e4m3fn"),
                     ("F8_E5M2", "float8_e5m2"), ("F8_E8M0", "float8_e8m0fnu")):
    if hasattr(torch, _attr):  # newer torch versions only
        _DTYPES[_name] = getattr(torch, _attr)


def dtype_of(name: str) -> torch.dtype:
    """The torch dtype of a safetensors dtype name."""
    try:
        return _DTYPES[name]
    except KeyError:
        raise UsageError(f"this torch ({torch.__version__}) has no dtype for {name} tensors", 11) from None


class _Torch(_core.Backend):
    def empty(self, shape, dtype):
        t = torch.empty(tuple(shape), dtype=dtype_of(dtype))
        return t, t.data_ptr(), t.numel() * t.element_size()

    def to_device(self, obj, device):
        return obj.to(device)


BACKEND = _Torch()


def load_file(filename, device: str | int | torch.device = "cpu", *, file: str | None = None,
              threads: int = 0, level: int | None = None, step: int | None = None,
              budget: str | int | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of the container (of its stored safetensors file `file`,
    when it holds several whose names collide), decoded in parallel on the
    CPU straight into new tensors, then moved to `device`. A container of
    levels (pack(..., refine=R) or exact=True): `budget` ("512MB", "2GiB",
    "4.25bpw") loads the model of the longest prefix that fits it, `step`
    the model at that step, `level` each tensor at min(level, its top) (0:
    the lossy model); default every tensor at its top."""
    with _core.Container(filename) as c:
        return _core.load(c, BACKEND, c.model_tensors(file), device, threads, level,
                          _core.resolve_step(c, step, budget))


def load(data: bytes, device: str | int | torch.device = "cpu", *, file: str | None = None,
         threads: int = 0) -> dict[str, torch.Tensor]:
    """The same from a container held in memory (bytes, bytearray, mmap)."""
    with _core.Container(data) as c:
        return _core.load(c, BACKEND, c.model_tensors(file), device, threads)


def load_model(model: torch.nn.Module, filename, strict: bool = True, device: str | int | torch.device = "cpu", *,
               file: str | None = None, threads: int = 0) -> tuple[list[str], list[str]]:
    """Loads a container's tensors into `model` (as ``safetensors.torch.load_model``):
    returns (missing, unexpected) names; with strict=True either raises
    wcodec.UsageError before anything is written. A parameter or buffer on the
    CPU that is contiguous and has the stored dtype and shape is decoded
    straight into its memory (no new tensor, no copy: the pages are already
    there); any other one through a new tensor and ``copy_``. Tied weights
    (several names on one storage) are written once and not reported missing."""
    state = model.state_dict()
    with _core.Container(filename) as c:
        stored = {t.name: t for t in c.model_tensors(file)}
        loaded_ptrs = {state[k].data_ptr() for k in stored if k in state}
        missing = [k for k in state if k not in stored and state[k].data_ptr() not in loaded_ptrs]
        unexpected = [k for k in stored if k not in state]
        if strict and (missing or unexpected):
            raise UsageError(f"{c.name}: cannot load strictly into {type(model).__name__}: "
                             f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                             f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}", 11)
        direct, copies, seen = [], [], set()
        for name, t in stored.items():
            dst = state.get(name)
            if dst is None:
                continue
            if dst.data_ptr() in seen and dst.numel():
                continue  # tied: one storage, written once
            seen.add(dst.data_ptr())
            want = dtype_of(t.dtype)
            if tuple(dst.shape) != tuple(t.shape):
                raise UsageError(f"{c.name}: tensor '{name}' is {list(t.shape)} in the file, "
                                 f"{list(dst.shape)} in the model", 11)
            if dst.device.type == "cpu" and dst.is_contiguous() and dst.dtype == want:
                direct.append((t, dst.data_ptr(), dst.numel() * dst.element_size(), None))
            else:
                copies.append((name, t))
        with torch.no_grad():
            c.decode_into(direct, threads)  # straight into the model's memory
            if copies:
                fresh = _core.load(c, BACKEND, [t for _, t in copies], threads=threads)
                for name, t in copies:
                    state[name].copy_(fresh[t.name])
    if device not in (None, "cpu"):
        model.to(device)
    return missing, unexpected


def _serialize(tensors, metadata):
    from safetensors.torch import save
    return save(dict(tensors), metadata=metadata)


def save_file(tensors: dict[str, torch.Tensor], filename, metadata: dict[str, str] | None = None,
              **options: Any) -> dict:
    """Writes a container holding the safetensors file that
    ``safetensors.torch.save_file`` would write: the same bytes ``wcodec
    pack`` makes of that file. Replaces an existing file (force=False keeps
    it); pack options (bits, codec, ...) pass through."""
    return _core.save(_serialize, tensors, filename, metadata, **options)


def save(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None, **options: Any) -> bytes:
    """The container as bytes (through a temporary file)."""
    return _core.save_to_bytes(save_file, tensors, metadata, **options)
