"""Loading: every dtype equals what safetensors loads from the original file."""

import subprocess

import numpy as np
import pytest
import safetensors.numpy
from conftest import corpus_files, weights  # noqa: F401

import wcodec
import wcodec.numpy

ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is needed for BF16/FP8 numpy arrays")

NUMPY_DTYPES = [np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64,
                np.float16, np.float32, np.float64]


def numpy_model(seed=1):
    rng = np.random.default_rng(seed)
    t = {}
    for i, dt in enumerate(NUMPY_DTYPES):
        shape = (7 + i, 33) if i % 3 else (5, 3, 11)
        if dt == np.bool_:
            t[f"t{i}.bool"] = rng.integers(0, 2, shape).astype(np.bool_)
        elif np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            t[f"t{i}.{np.dtype(dt).name}"] = rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
        else:
            t[f"t{i}.{np.dtype(dt).name}"] = weights(shape, i).astype(dt)
    t["scalar"] = np.array(3.5, np.float32)
    t["empty"] = np.zeros((0, 4), np.float16)
    # special float values survive bit for bit
    t["special"] = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-40, 65504], np.float32)
    return t


def test_every_numpy_dtype_equals_safetensors(tmp_path):
    t = numpy_model()
    src = tmp_path / "model.safetensors"
    safetensors.numpy.save_file(t, str(src), metadata={"format": "np", "k": "v"})
    wcodec.pack(src)
    ref = safetensors.numpy.load_file(str(src))
    got = wcodec.numpy.load_file(tmp_path / "model.safetensors.wcz")
    assert list(got) == list(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype, k
        assert got[k].shape == ref[k].shape, k
        assert got[k].tobytes() == ref[k].tobytes(), k  # bytes: NaN payloads and -0.0 included


def test_bf16_and_fp8_numpy_use_ml_dtypes(tmp_path):
    torch = pytest.importorskip("torch", reason="torch writes the BF16/FP8 test file")
    import safetensors.torch
    t = {"bf": torch.randn(64, 40).to(torch.bfloat16), "e4": torch.randn(16, 8).to(torch.float8_e4m3fn),
         "e5": torch.randn(16, 8).to(torch.float8_e5m2)}
    src = tmp_path / "m.safetensors"
    safetensors.torch.save_file(t, str(src))
    wcodec.pack(src)
    got = wcodec.numpy.load_file(str(src) + ".wcz")
    assert got["bf"].dtype == np.dtype(ml_dtypes.bfloat16)
    assert got["e4"].dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    assert got["e5"].dtype == np.dtype(ml_dtypes.float8_e5m2)
    for k in t:
        assert got[k].tobytes() == t[k].view(torch.uint8).numpy().tobytes(), k


def test_bf16_numpy_without_ml_dtypes_names_the_fix(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch", reason="torch writes the BF16 test file")
    import safetensors.torch
    src = tmp_path / "m.safetensors"
    safetensors.torch.save_file({"bf": torch.ones(4, 4, dtype=torch.bfloat16)}, str(src))
    wcodec.pack(src)
    monkeypatch.setitem(__import__("sys").modules, "ml_dtypes", None)  # import ml_dtypes now fails
    with pytest.raises(wcodec.UsageError, match="pip install ml_dtypes"):
        wcodec.numpy.load_file(str(src) + ".wcz")


@pytest.mark.parametrize("name", [p.name for p in corpus_files()] or ["(no corpus)"])
def test_corpus_numpy_equals_safetensors(tmp_path, corpus, name):
    src = next(p for p in corpus if p.name == name)
    out = tmp_path / (name + ".wcz")
    wcodec.pack(src, out)
    with safetensors.safe_open(str(src), "np") as f:
        meta = f.metadata()
        names = list(f.keys())
    ref = safetensors.numpy.load_file(str(src)) if "BF16" not in name.upper() and "bf16" not in name else None
    got = wcodec.numpy.load_file(out)
    assert sorted(got) == sorted(names)
    with wcodec.safe_open(out, "np") as f:
        assert f.metadata() == meta
    if ref is not None:
        for k in ref:
            assert got[k].dtype == ref[k].dtype and got[k].shape == ref[k].shape
            assert got[k].tobytes() == ref[k].tobytes(), k


def test_load_from_bytes_and_threads(tmp_path):
    t = numpy_model(2)
    src = tmp_path / "model.safetensors"
    safetensors.numpy.save_file(t, str(src))
    wcodec.pack(src, chunk_size=4096)
    data = (tmp_path / "model.safetensors.wcz").read_bytes()
    for threads in (1, 2, 0):
        got = wcodec.numpy.load(data, threads=threads)
        for k in t:
            assert got[k].tobytes() == t[k].tobytes(), (k, threads)


def test_lossy_container_loads_its_reconstruction(tmp_path, cli):
    t = {f"layers.{i}.w": weights((256, 128), i) for i in range(3)}
    t["norm"] = np.ones(128, np.float32)
    src = tmp_path / "m.safetensors"
    safetensors.numpy.save_file(t, str(src))
    r = wcodec.pack(src, bits=4)
    assert r["lossy_tensors"] == 3
    got = wcodec.numpy.load_file(str(src) + ".wcz")
    # the tool's unpack writes the same reconstruction
    subprocess.run([cli, "unpack", str(src) + ".wcz", "-o", str(tmp_path / "rec.safetensors")], check=True)
    ref = safetensors.numpy.load_file(str(tmp_path / "rec.safetensors"))
    for k in t:
        assert got[k].tobytes() == ref[k].tobytes(), k
    err = np.sqrt(np.mean((got["layers.0.w"] - t["layers.0.w"]) ** 2) / np.mean(t["layers.0.w"] ** 2))
    assert 0 < err < 0.15  # lossy, and close
    assert got["norm"].tobytes() == t["norm"].tobytes()  # 1-D tensors stay exact
