"""save_file writes what `wcodec pack` writes; pack, unpack and verify; errors."""

import os
import subprocess

import numpy as np
import pytest
import safetensors.numpy
from conftest import weights

import wcodec
import wcodec.numpy


def model():
    return {"a.weight": weights((64, 48), 1), "a.bias": np.zeros(48, np.float32),
            "ids": np.arange(100, dtype=np.int64)}


def test_numpy_save_file_equals_tool_pack(tmp_path, cli):
    t = model()
    safetensors.numpy.save_file(t, str(tmp_path / "model.safetensors"), metadata={"format": "np"})
    subprocess.run([cli, "pack", str(tmp_path / "model.safetensors")], check=True)
    (tmp_path / "py").mkdir()
    wcodec.numpy.save_file(t, tmp_path / "py" / "model.safetensors.wcz", metadata={"format": "np"})
    assert (tmp_path / "py" / "model.safetensors.wcz").read_bytes() == (tmp_path / "model.safetensors.wcz").read_bytes()
    # and unpacks to the file safetensors writes
    out = wcodec.unpack(tmp_path / "py" / "model.safetensors.wcz", tmp_path / "back.safetensors")
    assert open(out, "rb").read() == (tmp_path / "model.safetensors").read_bytes()


def test_torch_save_file_equals_tool_pack(tmp_path, cli):
    torch = pytest.importorskip("torch", reason="torch is not installed (CI installs it)")
    import safetensors.torch
    import wcodec.torch
    t = {"w": (torch.randn(128, 64) * 0.02).to(torch.bfloat16), "b": torch.zeros(64, dtype=torch.float16)}
    safetensors.torch.save_file(t, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    subprocess.run([cli, "pack", str(tmp_path / "model.safetensors")], check=True)
    wcodec.torch.save_file(t, tmp_path / "other.wcz", metadata={"format": "pt"}, force=False)
    # stored as other.safetensors: the same bytes but the stored name
    with wcodec.Container(tmp_path / "other.wcz") as c:
        assert [f.name for f in c.files] == ["other.safetensors"]
    (tmp_path / "py").mkdir()
    wcodec.torch.save_file(t, tmp_path / "py" / "model.safetensors.wcz", metadata={"format": "pt"})
    assert (tmp_path / "py" / "model.safetensors.wcz").read_bytes() == (tmp_path / "model.safetensors.wcz").read_bytes()
    assert wcodec.torch.load(wcodec.torch.save(t))["w"].equal(t["w"])
    with pytest.raises(wcodec.ExistsError):
        wcodec.torch.save_file(t, tmp_path / "other.wcz", force=False)


def test_pack_unpack_verify_round_trip(tmp_path):
    t = model()
    src = tmp_path / "model.safetensors"
    safetensors.numpy.save_file(t, str(src))
    r = wcodec.pack(src, codec="zstd", level=5)
    assert r["input_bytes"] == os.path.getsize(src)
    assert r["output_bytes"] == os.path.getsize(str(src) + ".wcz")
    with pytest.raises(wcodec.ExistsError):
        wcodec.pack(src)
    wcodec.pack(src, force=True)  # a model this small lies in the manifest (container 1.4): no chunk
    assert wcodec.verify(str(src) + ".wcz")["chunks"] == 0
    wcodec.pack(src, force=True, inline="never")
    v = wcodec.verify(str(src) + ".wcz")
    assert v["chunks"] >= 3
    os.rename(src, tmp_path / "orig.safetensors")
    out = wcodec.unpack(str(src) + ".wcz")  # beside it, under the stored name
    assert out == str(src)
    assert src.read_bytes() == (tmp_path / "orig.safetensors").read_bytes()
    with pytest.raises(wcodec.ExistsError, match="force=True"):
        wcodec.unpack(str(src) + ".wcz")
    # into a folder, as the tool does; one stored file by name
    (tmp_path / "into").mkdir()
    r = wcodec.pack(src, tmp_path / "into")
    assert os.path.isfile(tmp_path / "into" / "model.safetensors.wcz")
    out = wcodec.unpack(tmp_path / "into" / "model.safetensors.wcz", tmp_path / "one.safetensors", file="model.safetensors")
    assert open(out, "rb").read() == src.read_bytes()
    with pytest.raises(wcodec.UsageError, match="config.json"):
        wcodec.unpack(tmp_path / "into" / "model.safetensors.wcz", file="config.json")


def corrupt_payload(path):
    data = bytearray(open(path, "rb").read())
    with wcodec.Container(path) as c:
        assert c.tensors
    # flip a bit in the middle of the payload area (past the 64-byte header)
    data[len(data) // 3] ^= 0x10
    bad = str(path) + ".bad.wcz"
    open(bad, "wb").write(bytes(data))
    return bad


def test_errors_raise_wcodec_error_subclasses(tmp_path):
    t = {"w": weights((512, 64), 2)}
    src = tmp_path / "m.safetensors"
    safetensors.numpy.save_file(t, str(src))
    wcodec.pack(src, chunk_size=4096)
    wcz = str(src) + ".wcz"

    with pytest.raises(wcodec.FileError) as e:
        wcodec.numpy.load_file(tmp_path / "missing.wcz")
    assert isinstance(e.value, OSError) and e.value.code == 1 and "missing.wcz" in str(e.value)

    with wcodec.safe_open(wcz, "np") as f:
        with pytest.raises(wcodec.NotFoundError) as e:
            f.get_tensor("nope")
        assert isinstance(e.value, KeyError) and "nope" in str(e.value)

    bad = corrupt_payload(wcz)
    with pytest.raises(wcodec.ChecksumError) as e:
        wcodec.numpy.load_file(bad)
    assert e.value.code == 5 and "'w'" in str(e.value) and "bad.wcz" in str(e.value) and "offset" in str(e.value)
    with pytest.raises(wcodec.ChecksumError):
        wcodec.verify(bad)

    trunc = tmp_path / "t.wcz"
    trunc.write_bytes(open(wcz, "rb").read()[:-100])
    with pytest.raises(wcodec.FormatError) as e:
        wcodec.Container(trunc)
    assert "t.wcz" in str(e.value)

    junk = tmp_path / "j.wcz"
    junk.write_bytes(b"not a container at all" * 10)
    with pytest.raises(wcodec.BadMagicError):
        wcodec.Container(junk)
    with pytest.raises(wcodec.SafetensorsError):
        wcodec.pack(junk, tmp_path / "junk_out.wcz")
    assert not (tmp_path / "junk_out.wcz").exists()  # nothing written on failure
    with pytest.raises(wcodec.UsageError):
        wcodec.safe_open(wcz, framework="jax")
    c = wcodec.Container(wcz)
    c.close()
    with pytest.raises(wcodec.UsageError, match="closed"):
        c.chunks_decoded()


def test_pack_lossy_scheme(tmp_path):
    # a matrix with a few large values: "outliers" stores them exactly, "quant" does not
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((128, 256)) * 0.02).astype(np.float32)
    w.flat[::997] *= 50
    src = tmp_path / "m.safetensors"
    safetensors.numpy.save_file({"w": w}, str(src))
    reprs = {}
    for scheme in ("quant", "outliers"):
        out = tmp_path / f"{scheme}.wcz"
        wcodec.pack(src, out, bits=4, scheme=scheme)
        with wcodec.Container(out) as c:
            reprs[scheme] = c.tensors[0].representation
        back = wcodec.numpy.load_file(out)["w"]
        large = np.abs(w) > 0.2  # planted and large (50 x a small draw need not be)
        assert large.sum() > 10
        exact = back[large] == w[large]
        assert exact.all() == (scheme == "outliers")
    assert reprs == {"quant": "qrow", "outliers": "qrow-outliers"}
    wcodec.pack(src, tmp_path / "c.wcz", bits=2, scheme="codebook")
    with wcodec.Container(tmp_path / "c.wcz") as c:
        assert c.tensors[0].representation == "vq"
    back = wcodec.numpy.load_file(tmp_path / "c.wcz")["w"]
    assert back.shape == w.shape and np.isfinite(back).all()
    with pytest.raises(wcodec.UsageError, match="nope"):
        wcodec.pack(src, tmp_path / "x.wcz", bits=4, scheme="nope")
