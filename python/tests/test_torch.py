"""wcodec.torch: tensors equal safetensors.torch's, BF16 as torch.bfloat16."""

import threading

import pytest
from conftest import corpus_files

torch = pytest.importorskip("torch", reason="torch is not installed (CI installs it)")
import safetensors.torch  # noqa: E402

import wcodec  # noqa: E402
import wcodec.torch  # noqa: E402


def torch_model(seed=0):
    g = torch.Generator().manual_seed(seed)
    t = {}
    for dt in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
        t[f"w.{dt}".replace("torch.", "")] = (torch.randn(96, 80, generator=g) * 0.02).to(dt)
    t["fp8"] = torch.randn(32, 16, generator=g).to(torch.float8_e4m3fn)
    t["i64"] = torch.randint(-2**62, 2**62, (10, 3), generator=g, dtype=torch.int64)
    t["u8"] = torch.randint(0, 255, (7,), generator=g, dtype=torch.uint8)
    t["bool"] = torch.randint(0, 2, (9, 2), generator=g).bool()
    t["special"] = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan")], dtype=torch.bfloat16)
    t["scalar"] = torch.tensor(1.25, dtype=torch.float16)
    return t


def assert_same(got, ref):
    assert list(got) == list(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype, k
        assert got[k].shape == ref[k].shape, k
        a, b = got[k].contiguous(), ref[k].contiguous()
        assert a.view(torch.uint8).equal(b.view(torch.uint8)) if a.dim() else a.reshape(1).view(torch.uint8).equal(
            b.reshape(1).view(torch.uint8)), k


def test_every_dtype_equals_safetensors_torch(tmp_path):
    src = tmp_path / "model.safetensors"
    safetensors.torch.save_file(torch_model(), str(src), metadata={"format": "pt"})
    wcodec.pack(src)
    got = wcodec.torch.load_file(str(src) + ".wcz")
    assert got["w.bfloat16"].dtype == torch.bfloat16
    assert_same(got, safetensors.torch.load_file(str(src)))


@pytest.mark.parametrize("name", [p.name for p in corpus_files()] or ["(no corpus)"])
def test_corpus_torch_equals_safetensors(tmp_path, corpus, name):
    src = next(p for p in corpus if p.name == name)
    out = tmp_path / (name + ".wcz")
    wcodec.pack(src, out)
    assert_same(wcodec.torch.load_file(out), safetensors.torch.load_file(str(src)))


def test_corpus_bf16_variants_of_whisper(tmp_path, corpus):
    """Whisper tiny.en (realistic tensor sizes) converted to BF16 and F32 loads exactly too."""
    src = next((p for p in corpus if p.name.startswith("whisper")), None)
    if src is None:
        pytest.skip("no whisper file in the corpus")
    ref = safetensors.torch.load_file(str(src))
    for dt in (torch.bfloat16, torch.float32):
        conv = {k: v.to(dt) for k, v in ref.items()}
        p = tmp_path / f"whisper_{dt}.safetensors".replace("torch.", "")
        safetensors.torch.save_file(conv, str(p))
        wcodec.pack(p)
        assert_same(wcodec.torch.load_file(str(p) + ".wcz"), safetensors.torch.load_file(str(p)))


def test_safe_open_torch_lazy_get_tensor(tmp_path):
    src = tmp_path / "model.safetensors"
    t = torch_model(1)
    safetensors.torch.save_file(t, str(src), metadata={"a": "1"})
    wcodec.pack(src)
    with wcodec.safe_open(str(src) + ".wcz", framework="pt") as f, \
            safetensors.safe_open(str(src), framework="pt") as ref:
        assert f.keys() == list(ref.keys())
        assert f.metadata() == ref.metadata()
        assert f.container.chunks_decoded() == 0  # opening decodes nothing
        for k in ref.keys():
            assert_same({k: f.get_tensor(k)}, {k: ref.get_tensor(k)})


def test_concurrent_loads_from_threads(tmp_path):
    src = tmp_path / "model.safetensors"
    safetensors.torch.save_file(torch_model(2), str(src))
    wcodec.pack(src, chunk_size=4096)
    ref = safetensors.torch.load_file(str(src))
    errors = []

    def work():
        try:
            for _ in range(5):
                assert_same(wcodec.torch.load_file(str(src) + ".wcz", threads=2), ref)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    assert not errors, errors


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(64, 32)
        self.fc = torch.nn.Linear(32, 48)
        self.head = torch.nn.Linear(32, 64, bias=False)
        self.head.weight = self.emb.weight  # tied
        self.register_buffer("scale", torch.ones(48, dtype=torch.float32))


def test_load_model_decodes_into_the_parameters(tmp_path):
    torch.manual_seed(0)
    src = Tiny().to(torch.bfloat16)
    src.scale.fill_(0.5)
    state = {k: v for k, v in src.state_dict().items() if k != "head.weight"}  # stored once, as hubs do
    wcodec.torch.save_file(state, tmp_path / "m.safetensors.wcz")
    dst = Tiny().to(torch.bfloat16)
    ptrs = {k: v.data_ptr() for k, v in dst.state_dict().items()}
    missing, unexpected = wcodec.torch.load_model(dst, tmp_path / "m.safetensors.wcz")
    assert missing == [] and unexpected == []  # the tied head is not missing
    for k, v in src.state_dict().items():
        assert dst.state_dict()[k].equal(v), k
        assert dst.state_dict()[k].data_ptr() == ptrs[k], k  # decoded in place, not replaced
    assert dst.head.weight.data_ptr() == dst.emb.weight.data_ptr()

    # another dtype in the model: through a new tensor and copy_
    other = Tiny()  # float32
    wcodec.torch.load_model(other, tmp_path / "m.safetensors.wcz")
    assert other.fc.weight.equal(src.fc.weight.float())

    # strict: a name the model lacks is refused before anything is written
    wcodec.torch.save_file(dict(state, extra=torch.zeros(3)), tmp_path / "x.safetensors.wcz")
    fresh = Tiny().to(torch.bfloat16)
    before = fresh.fc.weight.clone()
    with pytest.raises(wcodec.UsageError, match="extra"):
        wcodec.torch.load_model(fresh, tmp_path / "x.safetensors.wcz")
    assert fresh.fc.weight.equal(before)
    missing, unexpected = wcodec.torch.load_model(fresh, tmp_path / "x.safetensors.wcz", strict=False)
    assert unexpected == ["extra"] and missing == []
    assert fresh.fc.weight.equal(src.fc.weight)
