"""get_slice decodes only the chunks (or lossy tiles) holding the rows asked for."""

import subprocess

import numpy as np
import pytest
import safetensors.numpy
from conftest import weights

import wcodec
import wcodec.numpy


@pytest.fixture
def packed(tmp_path):
    t = {"big": weights((1000, 64), 3),  # 256 bytes a row: 16 rows per 4096-byte chunk
         "small": np.arange(24, dtype=np.int32).reshape(2, 3, 4),
         "vec": np.arange(10, dtype=np.float32),
         "one": np.array(7, np.int64)}
    src = tmp_path / "m.safetensors"
    safetensors.numpy.save_file(t, str(src))
    wcodec.pack(src, chunk_size=4096)
    return t, str(src) + ".wcz"


INDEXES = [slice(None), slice(10, 50), slice(0, 1), slice(990, 2000), slice(5, 100, 7), slice(None, None, -1),
           slice(80, 20, -3), slice(50, 10), 0, -1, 123, Ellipsis, (slice(3, 9), slice(2, 40, 5)), (7, slice(1, 3)),
           (Ellipsis, 5), (slice(None), 0)]


@pytest.mark.parametrize("index", INDEXES, ids=repr)
def test_get_slice_equals_numpy_indexing(packed, index):
    t, wcz = packed
    with wcodec.safe_open(wcz, "np") as f:
        s = f.get_slice("big")
        assert s.get_shape() == [1000, 64]
        assert s.get_dtype() == "F32"
        got = s[index]
        np.testing.assert_array_equal(got, t["big"][index])


def test_get_slice_other_ranks(packed):
    t, wcz = packed
    with wcodec.safe_open(wcz, "np") as f:
        np.testing.assert_array_equal(f.get_slice("small")[1:, :, 2], t["small"][1:, :, 2])
        np.testing.assert_array_equal(f.get_slice("vec")[2:7], t["vec"][2:7])
        np.testing.assert_array_equal(f.get_slice("one")[...], t["one"][...])
        with pytest.raises(IndexError):
            f.get_slice("big")[1000]


def test_get_slice_reads_only_needed_chunks(packed):
    t, wcz = packed
    with wcodec.safe_open(wcz, "np") as f:
        c = f.container
        info = c.tensor("big")
        assert info.chunks == (1000 * 256 + 4095) // 4096  # 63 chunks
        before = c.chunks_decoded()
        rows = f.get_slice("big")[100:140]  # bytes 25600..35840: chunks 6, 7, 8
        assert c.chunks_decoded() - before == 3
        np.testing.assert_array_equal(rows, t["big"][100:140])
        before = c.chunks_decoded()
        f.get_slice("big")[5]  # one row: one chunk
        assert c.chunks_decoded() - before == 1
        before = c.chunks_decoded()
        f.get_tensor("big")
        assert c.chunks_decoded() - before == info.chunks


def test_lossy_get_slice_reads_one_tile(tmp_path):
    t = {"w": weights((8192, 64), 5)}  # 4096 rows a tile: two tiles
    src = tmp_path / "m.safetensors"
    safetensors.numpy.save_file(t, str(src))
    wcodec.pack(src, bits=4)
    with wcodec.safe_open(str(src) + ".wcz", "np") as f:
        c = f.container
        assert c.tensor("w").representation == "qrow"
        whole = f.get_tensor("w")
        per_tile = c.chunks_decoded() // 2
        before = c.chunks_decoded()
        part = f.get_slice("w")[4100:4110]
        assert c.chunks_decoded() - before == per_tile
        np.testing.assert_array_equal(part, whole[4100:4110])


def test_exact_top_loads_the_original(tmp_path):
    # pack(bits=..., exact=True): level 0 is the lossy model, the file as a whole the original (spec/EXACT_TOP.md)
    t = {"w": weights((8192, 64), 6), "v": weights((300, 96), 7).astype(np.float16)}
    t["w"][3, :5] = [np.inf, -np.inf, np.nan, 0.0, -0.0]
    src = tmp_path / "m.safetensors"
    safetensors.numpy.save_file(t, str(src))
    wcodec.pack(src, bits=4, exact=True)
    got = wcodec.numpy.load_file(str(src) + ".wcz")
    for k, v in t.items():
        assert got[k].dtype == v.dtype
        assert got[k].tobytes() == v.tobytes()  # bit for bit, the NaN included
    with wcodec.safe_open(str(src) + ".wcz", "np") as f:
        assert f.container.tensor("w").levels == 2
        assert f.get_slice("w")[4100:4110].tobytes() == t["w"][4100:4110].tobytes()
    # level 0: the lossy model, what pack(bits=4, scheme="quant") gives (the Inf/NaN row aside, kept by exact=True)
    small = wcodec.numpy.load_file(str(src) + ".wcz", level=0)
    for k, v in t.items():
        assert small[k].dtype == v.dtype and small[k].shape == v.shape
        assert small[k].tobytes() != v.tobytes()
        finite = np.isfinite(v.astype(np.float32))
        err = np.abs(small[k].astype(np.float64) - v.astype(np.float64))[finite]
        assert np.sqrt((err ** 2).mean()) < 0.2 * np.sqrt((v.astype(np.float64)[finite] ** 2).mean())
    assert wcodec.numpy.load_file(str(src) + ".wcz", level=5)["w"].tobytes() == t["w"].tobytes()  # min(5, top)


def test_refinement_levels_load_finer_models(tmp_path):
    # pack(bits=..., refine=2, exact=True): four levels, the error falling with each, the top the original
    # (spec/REFINE.md)
    t = {"w": weights((2048, 64), 8), "v": weights((300, 96), 9).astype(np.float16)}
    src = tmp_path / "m.safetensors"
    safetensors.numpy.save_file(t, str(src))
    wcodec.pack(src, bits=3, refine=2, exact=True)
    with wcodec.safe_open(str(src) + ".wcz", "np") as f:
        assert f.container.tensor("w").levels == 4
    for k, v in t.items():
        ref = v.astype(np.float64)
        errs = [np.sqrt(((wcodec.numpy.load_file(str(src) + ".wcz", level=lv)[k].astype(np.float64) - ref) ** 2).mean())
                for lv in range(4)]
        assert errs[0] > errs[1] > errs[2] > errs[3] == 0, errs
        assert errs[1] < errs[0] / 2
    # lazily, at a level: a row range decodes from its tiles alone, equal to the whole tensor's rows there
    for lv in (0, 1, 2, 9):
        whole = wcodec.numpy.load_file(str(src) + ".wcz", level=lv)
        with wcodec.safe_open(str(src) + ".wcz", "np", level=lv) as f:
            for k in t:
                np.testing.assert_array_equal(f.get_slice(k)[5:40], whole[k][5:40])
                np.testing.assert_array_equal(f.get_tensor(k), whole[k])


def test_bitstack_blocks_load_like_refinement_levels(tmp_path, cli):
    # pack(..., refine=2, block="bitstack", exact=True): two sign-magnitude blocks (spec/BITSTACK.md), each about
    # halving the error, the top the original; the same file as the CLI writes
    t = {"w": weights((512, 64), 28), "v": weights((300, 96), 29).astype(np.float16)}
    src = tmp_path / "m.safetensors"
    safetensors.numpy.save_file(t, str(src))
    wcodec.pack(src, tmp_path / "b.wcz", bits=2.5, refine=2, block="bitstack", block_rank=1, exact=True)
    for k, v in t.items():
        ref = v.astype(np.float64)
        errs = [np.sqrt(((wcodec.numpy.load_file(tmp_path / "b.wcz", level=lv)[k].astype(np.float64) - ref) ** 2)
                        .mean()) for lv in range(4)]
        assert errs[1] < 0.75 * errs[0] and errs[2] < 0.75 * errs[1] and errs[3] == 0, errs
    subprocess.run([cli, "pack", str(src), "-o", str(tmp_path / "c.wcz"), "--bits", "2.5", "--refine", "2",
                    "--block", "bitstack", "--block-rank", "1", "--exact", "-q"], check=True)
    assert (tmp_path / "b.wcz").read_bytes() == (tmp_path / "c.wcz").read_bytes()
    with pytest.raises(wcodec.Error):
        wcodec.pack(src, tmp_path / "x.wcz", bits=2.5, block="bitstack")  # no refine


def test_refine_factor_two_gives_levels_of_about_a_bit(tmp_path, cli):
    # pack(..., refine=3, refine_factor=2): each level's step twice finer (spec/REFINE.md §5: odd codes), the
    # error about halving a level; the same file as the CLI writes; a factor outside 2..6 is refused
    t = {"w": weights((512, 64), 30)}
    src = tmp_path / "m.safetensors"
    safetensors.numpy.save_file(t, str(src))
    wcodec.pack(src, tmp_path / "a.wcz", bits=3, refine=3, refine_factor=2)
    ref = t["w"].astype(np.float64)
    errs = [np.sqrt(((wcodec.numpy.load_file(tmp_path / "a.wcz", level=lv)["w"].astype(np.float64) - ref) ** 2)
                    .mean()) for lv in range(4)]
    for lo, hi in zip(errs, errs[1:]):
        assert 1.7 < lo / hi < 2.4, errs
    subprocess.run([cli, "pack", str(src), "-o", str(tmp_path / "c.wcz"), "--bits", "3", "--refine", "3",
                    "--refine-factor", "2", "-q"], check=True)
    assert (tmp_path / "a.wcz").read_bytes() == (tmp_path / "c.wcz").read_bytes()
    with pytest.raises(wcodec.Error, match="refine-factor"):
        wcodec.pack(src, tmp_path / "x.wcz", bits=3, refine=2, refine_factor=7)


def test_budgets_load_the_model_of_a_prefix(tmp_path):
    # a container of levels is a sequence of steps (spec/REFINE.md, FORMAT.md §4.3): budget= loads the model of
    # the longest prefix that fits, step= the model at a step, each tensor at its level there
    t = {"w": weights((1024, 64), 18), "v": weights((300, 96), 19).astype(np.float16)}
    src = tmp_path / "m.safetensors"
    safetensors.numpy.save_file(t, str(src))
    wcz = str(src) + ".wcz"
    wcodec.pack(src, bits=3, refine=2)
    with wcodec.Container(wcz) as c:
        steps = c.steps
        assert steps == 1 + 2 * 2  # a step per tensor level above 0
        levels = [[c.level_of(ti, step=k) for ti in c.tensors] for k in range(steps)]
        # each step's prefix: the bytes the budget of the whole file reports for the last step, and for each
        # step the least budget that still gives it (a byte less gives the step before)
        top, size = c.budget_step("64bpw")
        assert top == steps - 1
        prefix = {top: size}
        for k in range(steps - 1, 0, -1):
            step, nbytes = c.budget_step(prefix[k] - 1)
            assert step == k - 1 and nbytes < prefix[k]
            prefix[k - 1] = nbytes
            assert c.budget_step(nbytes) == (k - 1, nbytes)
        with pytest.raises(wcodec.UsageError):
            c.budget_step(prefix[0] - 1)
    # each step raises one tensor's level by one
    for k in range(1, steps):
        assert sum(levels[k]) == sum(levels[k - 1]) + 1
        assert all(a >= b for a, b in zip(levels[k], levels[k - 1]))
    ref = {n: v.astype(np.float64) for n, v in t.items()}
    err = []
    for k in range(steps):
        got = wcodec.numpy.load_file(wcz, step=k)
        assert all(np.array_equal(got[n], b) for n, b in wcodec.numpy.load_file(wcz, budget=prefix[k]).items())
        err.append(sum(((got[n].astype(np.float64) - ref[n]) ** 2).sum() for n in t))
        # lazily: the same tensors, and a row range from its tiles alone
        with wcodec.safe_open(wcz, "np", budget=f"{prefix[k]}") as f:
            assert f.step == k
            for n in t:
                np.testing.assert_array_equal(f.get_tensor(n), got[n])
                np.testing.assert_array_equal(f.get_slice(n)[3:30], got[n][3:30])
    assert all(a > b for a, b in zip(err, err[1:])), err
    with pytest.raises(wcodec.UsageError):
        wcodec.numpy.load_file(wcz, budget="lots")
    with pytest.raises(wcodec.UsageError):
        wcodec.numpy.load_file(wcz, budget="1GiB", step=1)
    with pytest.raises(wcodec.UsageError):
        wcodec.safe_open(wcz, "np", level=1, step=1)
