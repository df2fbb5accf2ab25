"""The framework-neutral core: containers, tensor listings, decoding into
memory the frameworks allocate, and the whole-model operations."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import _wcodec
from ._errors import NotFoundError, UsageError


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a container, as its manifest lists it."""

    index: int
    name: str
    dtype: str            # safetensors spelling: "BF16", "F32", ...
    shape: tuple
    nbytes: int           # bytes of the decoded tensor in its own dtype
    file: int             # index into Container.files
    rows: int             # shape[0] (1 for a scalar)
    row_bytes: int        # bytes of one row (0 when rows are not whole bytes)
    representation: str   # "exact", or a lossy one ("qrow", "qrow-outliers", "vq")
    codec: str
    stored_size: int
    chunks: int
    levels: int           # 1; more for a lossy tensor with refinement levels or an exact top layer (pack(..., refine=R, exact=True))


@dataclass(frozen=True)
class FileInfo:
    """A file stored in a container: a safetensors file or a blob."""

    index: int
    name: str
    kind: str             # "safetensors" | "blob"
    size: int
    first_tensor: int
    tensor_count: int
    metadata: dict


class Container:
    """An open .wcz container (a path, or a bytes-like object such as an mmap).

    Thread-safe for decoding; close() must not race a decode. Used as a
    context manager, it closes on exit. Every chunk read is checked against
    its stored checksum unless verify_chunks=False (trusted files).
    """

    def __init__(self, source: str | os.PathLike | bytes | bytearray | memoryview, *, name: str | None = None,
                 verify_chunks: bool = True):
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            self._a = _wcodec.Archive(path)
            self.name = path
        else:
            self.name = name or "<memory>"
            self._a = _wcodec.Archive(source, self.name)
        if not verify_chunks:  # a trusted, already verified file: skip each chunk's hash
            self._a.set_verify_chunks(False)
        self.files = [FileInfo(i, *f[:5], dict(f[5])) for i, f in enumerate(self._a.files())]
        self.tensors = [TensorInfo(i, *t) for i, t in enumerate(self._a.tensors())]
        self._by_name: dict[str, int] = {}
        for t in self.tensors:
            self._by_name.setdefault(t.name, t.index)  # the first of a name, in file order

    # -- lookup ---------------------------------------------------------------
    def tensor(self, name: str, file: str | None = None) -> TensorInfo:
        if file is None:
            i = self._by_name.get(name)
            if i is None:
                raise NotFoundError(f"{self.name}: no tensor '{name}'", 13)
            return self.tensors[i]
        f = self.file(file)
        for t in self.tensors[f.first_tensor:f.first_tensor + f.tensor_count]:
            if t.name == name:
                return t
        raise NotFoundError(f"{self.name}: no tensor '{name}' in file '{file}'", 13)

    def file(self, name: str) -> FileInfo:
        for f in self.files:
            if f.name == name:
                return f
        raise NotFoundError(f"{self.name}: no file '{name}'", 13)

    def model_tensors(self, file: str | None = None) -> list[TensorInfo]:
        """The tensors of one stored safetensors file (`file`), or of all of
        them when their names do not collide (a sharded model)."""
        if file is not None:
            f = self.file(file)
            return self.tensors[f.first_tensor:f.first_tensor + f.tensor_count]
        seen: dict[str, str] = {}
        out = []
        for f in self.files:
            if f.kind != "safetensors":
                continue
            for t in self.tensors[f.first_tensor:f.first_tensor + f.tensor_count]:
                if t.name in seen:
                    raise UsageError(
                        f"{self.name}: tensor '{t.name}' is in both '{seen[t.name]}' and '{f.name}': "
                        "name the file to load (file=...)", 11)
                seen[t.name] = f.name
                out.append(t)
        return out

    # -- levels and budgets -------------------------------------------------------
    @property
    def steps(self) -> int:
        """The model's steps: a container packed with levels (pack(..., refine=R)
        or exact=True) is a sequence of steps, each bringing levels of some
        tensors, and its first bytes up to a step's end hold the model at that
        step; 1 for a container without levels."""
        return self._a.step_count()

    def budget_step(self, budget: str | int) -> tuple[int, int]:
        """The last step whose prefix fits `budget` (bytes, with an optional
        unit: "512MB", "2GiB"; or bits per weight: "4.25bpw"), and the bytes of
        that prefix. wcodec.UsageError when it does not parse or fits no step."""
        return tuple(self._a.budget_step(str(budget)))

    def level_of(self, t: TensorInfo, level: int | None = None, step: int | None = None) -> int | None:
        """Tensor t's level: at model step `step`, or min(level, its top);
        None (its top) when neither is given."""
        _level_or_step(level, step)
        if step is not None:
            return self._a.tensor_level_at(t.index, int(step))
        return None if level is None else min(int(level), t.levels - 1)

    # -- decoding ---------------------------------------------------------------
    def decode_into(self, jobs: Sequence[tuple[TensorInfo, int, int, str | None]], threads: int = 0,
                    level: int | None = None, step: int | None = None) -> None:
        """Decodes [(tensor, address, nbytes, dtype)] into memory the caller
        owns and keeps alive, on the library's threads, GIL released.
        `level`: each tensor at min(level, its top) (a container packed with
        exact=True: 0 is the lossy model); `step`: each at its level at that
        model step (Container.steps); neither: every tensor at its top."""
        levels = None if level is None and step is None else [self.level_of(t, level, step) for t, _, _, _ in jobs]
        self._a.decode_many([(t.index, p, n, dt) for t, p, n, dt in jobs], threads, levels)

    def decode_rows_into(self, t: TensorInfo, r0: int, r1: int, address: int, nbytes: int,
                         dtype: str | None = None, threads: int = 0, level: int | None = None,
                         step: int | None = None) -> None:
        """Rows [r0, r1) of tensor t; `level` / `step` as decode_into, default its top."""
        self._a.decode_rows(t.index, r0, r1, address, nbytes, dtype, threads, self.level_of(t, level, step))

    def chunks_decoded(self) -> int:
        """Stored chunks decoded since the container was opened (a debug
        counter: lazy reads touch only the chunks they need)."""
        return self._a.chunks_decoded()

    def close(self) -> None:
        self._a.close()

    @property
    def closed(self) -> bool:
        return self._a.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Backend:
    """What a framework supplies: empty(shape, dtype) -> (object, address,
    nbytes) for a tensor of a safetensors dtype name, and to_device."""

    def empty(self, shape: tuple, dtype: str):
        raise NotImplementedError

    def to_device(self, obj, device):
        return obj


def _level_or_step(level: int | None, step: int | None) -> None:
    if level is not None and step is not None:
        raise UsageError("give a level or a step (or a budget), not both", 11)


def resolve_step(container: Container, step: int | None, budget: str | int | None) -> int | None:
    """The model step a caller asked for: `step`, or the one `budget` affords."""
    if budget is None:
        return step
    if step is not None:
        raise UsageError("give a step or a budget, not both", 11)
    return container.budget_step(budget)[0]


def load(container: Container, backend: Backend, tensors: Iterable[TensorInfo], device: Any = "cpu",
         threads: int = 0, level: int | None = None, step: int | None = None) -> dict:
    """Decodes `tensors` into new framework tensors: every destination is
    allocated first, then one library call decodes them all in parallel."""
    out, jobs = {}, []
    for t in tensors:  # in file order, as safetensors' load_file
        obj, addr, nbytes = backend.empty(t.shape, t.dtype)
        out[t.name] = obj
        jobs.append((t, addr, nbytes, None))
    container.decode_into(jobs, threads, level, step)
    if device not in (None, "cpu"):
        out = {k: backend.to_device(v, device) for k, v in out.items()}
    return out


def _rows_of(index, rows: int) -> tuple[int, int, Any]:
    """The row range [r0, r1) a first-axis index needs, and the index that
    then applies to the decoded rows."""
    if isinstance(index, slice):
        start, stop, step = index.indices(rows)
        if step > 0:
            r0, r1 = start, max(start, stop)
        else:
            r0, r1 = (stop + 1, start + 1) if start > stop else (0, 0)
        if r0 >= r1:
            return 0, 0, slice(0, 0)
        return r0, r1, slice(start - r0, (stop - r0) if stop - r0 >= 0 else None, step)
    if isinstance(index, int) or hasattr(index, "__index__"):
        i = int(index.__index__())
        if i < 0:
            i += rows
        if not 0 <= i < rows:
            raise IndexError(f"index {int(index)} is out of range for {rows} rows")
        return i, i + 1, 0
    raise UsageError(f"get_slice: unsupported index {index!r} (use integers and slices)", 11)


class Slice:
    """A lazy view of one tensor (safetensors' get_slice): indexing it decodes
    only the chunks that hold the rows the first index selects."""

    def __init__(self, container: Container, backend: Backend, t: TensorInfo, level: int | None = None):
        self._c, self._b, self._t, self._level = container, backend, t, level

    def get_shape(self) -> list:
        return list(self._t.shape)

    def get_dtype(self) -> str:
        return self._t.dtype

    def __len__(self) -> int:
        return self._t.shape[0] if self._t.shape else 0

    def __getitem__(self, index):
        t = self._t
        if not isinstance(index, tuple):
            index = (index,)
        if index and index[0] is Ellipsis:
            index = (slice(None),) * max(0, len(t.shape) - len(index) + 1) + index[1:]
        if not t.shape:
            if index not in ((), (Ellipsis,)):
                raise IndexError("a scalar tensor takes no index")
            return self._rows(0, 1, t.shape)
        first, rest = (index[0], index[1:]) if index else (slice(None), ())
        r0, r1, local = _rows_of(first, t.rows)
        part = self._rows(r0, r1, (r1 - r0,) + tuple(t.shape[1:]))
        return part[(local,) + rest]

    def _rows(self, r0: int, r1: int, shape: tuple):
        obj, addr, nbytes = self._b.empty(shape, self._t.dtype)
        if r1 > r0:
            self._c.decode_rows_into(self._t, r0, r1, addr, nbytes, level=self._level)
        return obj


class SafeOpen:
    """``with safe_open(path, framework) as f``: f.keys(), f.metadata(),
    f.get_tensor(name), f.get_slice(name)[a:b]. Nothing is decoded until a
    tensor (or a row range of one) is asked for."""

    def __init__(self, path, backend: Backend, device: Any = "cpu", file: str | None = None,
                 level: int | None = None, step: int | None = None, budget: str | int | None = None):
        self._c = Container(path)
        self._b = backend
        self._device = device
        self._level = level
        try:
            self._step = resolve_step(self._c, step, budget)
            _level_or_step(level, self._step)  # now, not at the first tensor
            self._tensors = {t.name: t for t in self._c.model_tensors(file)}
            st_files = [f for f in self._c.files if f.kind == "safetensors"]
            self._meta = (self._c.file(file) if file else (st_files[0] if st_files else None))
        except BaseException:
            self._c.close()
            raise

    def keys(self) -> list[str]:
        """Tensor names, sorted (as safetensors lists them)."""
        return sorted(self._tensors)

    def offset_keys(self) -> list[str]:
        return self.keys()

    def metadata(self) -> dict | None:
        """The __metadata__ of the (first) safetensors file, None when it has none (as safetensors)."""
        return dict(self._meta.metadata) if self._meta and self._meta.metadata else None

    def _info(self, name: str) -> TensorInfo:
        t = self._tensors.get(name)
        if t is None:
            raise NotFoundError(f"{self._c.name}: no tensor '{name}'", 13)
        return t

    def get_tensor(self, name: str):
        t = self._info(name)
        return load(self._c, self._b, [t], self._device, level=self._level, step=self._step)[name]

    def get_slice(self, name: str) -> Slice:
        t = self._info(name)
        return Slice(self._c, self._b, t, self._c.level_of(t, self._level, self._step))

    @property
    def step(self) -> int | None:
        """The model step read (given, or the budget's); None: every tensor at its top."""
        return self._step

    @property
    def container(self) -> Container:
        return self._c

    def close(self) -> None:
        self._c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- whole-model operations -------------------------------------------------------

def _pack_args(threads=0, force=False, codec=None, level=0, chunk_size=0, bits=None, keep=None,
               sensitivity=None, min_elements=0, parallel=None, calib=None, act_order=True,
               scheme=None, inline=None, exact=False, refine=0, block=None, block_rank=0, refine_factor=0) -> tuple:
    return (int(threads), bool(force), codec, int(level), int(chunk_size), float(bits or 0), keep,
            os.fspath(sensitivity) if sensitivity is not None else None, int(min_elements), parallel,
            os.fspath(calib) if calib is not None else None, bool(act_order), scheme, inline, bool(exact),
            int(refine), block, int(block_rank), int(refine_factor))


def pack(src, dst=None, **options) -> dict:
    """Packs a .safetensors file, a sharded model's *.index.json or a model
    folder into one container (`dst`, default: SRC.wcz beside it). Options:
    codec ("auto", "raw", "zstd", "float-ans", "float-ans-trim", "float-ans-mixed", "float-ans-patch", "float-ans-groups",
    "float-ans-pairs"), level (zstd), chunk_size,
    threads (0: all cores), force (replace an existing output), parallel
    ("cpu", or "gpu": float-ans laid out for GPU decoders), and for a
    lossy model bits (bits per weight), keep (regex of tensors kept exact),
    sensitivity (a file), min_elements, calib (a calibration file,
    spec/CALIB.md: GPTQ error feedback, importances, sensitivities) and
    act_order (with calib; default True), scheme ("auto", the default: per
    tensor; "quant"; "outliers": sparse exact outliers, spec/OUTLIERS.md;
    "codebook": vector codebooks, spec/VQ.md), inline ("auto", the default:
    small tensors stored in the manifest where that saves 1/256 of the
    bytes, container 1.4; "always"; "never": a file older readers read),
    exact (with bits: a second level restoring the original bits,
    spec/EXACT_TOP.md: the file unpacks to the original model and its level
    0 is the model of `bits`), refine (with bits: that many refinement
    levels above level 0, spec/REFINE.md, each a step refine_factor times
    finer, 2 to 6, default 3: about log2 of it in bits per weight a level,
    below the exact top layer when exact), block (with refine: the levels'
    kind, "refine" (the default), "bitstack": BitStack's sign-magnitude
    blocks, spec/BITSTACK.md, or "auto": per tensor and level, by rate and
    distortion) and block_rank (the blocks' rank, 1 to 16; default 2).
    Returns the sizes written."""
    return _wcodec.pack(os.fspath(src), os.fspath(dst) if dst is not None else None, *_pack_args(**options))


def pack_bytes(data, name: str, dst, **options) -> dict:
    """Packs a safetensors file held in memory as if it were a file called
    `name`: the same container bytes pack() makes of such a file."""
    return _wcodec.pack_memory(data, name, os.fspath(dst), *_pack_args(**options))


def unpack(src, dst=None, *, file: str | None = None, threads: int = 0, force: bool = False) -> str:
    """Restores the original file(s), checking every checksum, to `dst` (a
    file, or a folder for a model of several files; default: beside the
    container under the stored name). `file`: restore only the stored file
    of that name (a config.json, one shard). Returns the path written."""
    d = os.fspath(dst) if dst is not None else None
    if file is not None:
        return _wcodec.unpack_file(os.fspath(src), file, d, int(threads), bool(force))
    return _wcodec.unpack(os.fspath(src), d, int(threads), bool(force))


def verify(src, *, threads: int = 0) -> dict:
    """Decodes every chunk and checks every checksum; raises on the first problem."""
    chunks, nbytes = _wcodec.verify(os.fspath(src), int(threads))
    return {"chunks": chunks, "bytes": nbytes}


def stored_name_for(path) -> str:
    """The file name a container written by save_file stores: PATH's base
    name without ".wcz", with ".safetensors" added when it lacks it (so
    unpack gives a file the safetensors tools read)."""
    base = os.path.basename(os.fspath(path))
    if base.endswith(".wcz"):
        base = base[:-4]
    if not base.endswith(".safetensors"):
        base += ".safetensors"
    return base


def save_to_bytes(save_file: Callable[..., dict], tensors: Mapping, metadata=None, **options) -> bytes:
    """A container as bytes, written by a framework's save_file through a
    temporary file."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "model.safetensors.wcz")
        save_file(tensors, p, metadata, **options)
        with open(p, "rb") as f:
            return f.read()


def save(serialize: Callable[[Mapping, dict | None], bytes], tensors: Mapping, path, metadata=None,
         name: str | None = None, force: bool = True, **options) -> dict:
    """Writes a container from in-memory tensors: `serialize` is the
    safetensors package's save() for the framework, so the container holds
    exactly the file safetensors would have written."""
    data = serialize(tensors, metadata)
    return pack_bytes(data, name or stored_name_for(path), path, force=force, **options)
