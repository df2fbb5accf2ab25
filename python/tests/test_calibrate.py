"""tools/calibrate.py and the calibration file it writes (spec/CALIB.md), on the
corpus model stories260K: every linear weight gets its hessian, importance and
sensitivity with the right shapes and properties, the output is a function of
the seed, the sensitivity ranks tensors as adding noise to them hurts the loss,
and bad input fails with one clear line."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="test_calibrate needs torch (pip install torch)")
pytest.importorskip("transformers", reason="test_calibrate needs Hugging Face transformers (pip install transformers)")

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = pathlib.Path(os.environ.get("WCODEC_CORPUS_DIR") or ROOT.parent / "shared" / "corpus")
SRC = CORPUS / "stories260K_llama_hf_f32.safetensors"
TOOL = ROOT / "tools" / "calibrate.py"
SEQS, LEN = 16, 64  # small: the tool runs in about a second on the corpus model
KINDS = ("hessian", "importance", "sensitivity")


def load_tool():
    spec = importlib.util.spec_from_file_location("wcodec_calibrate", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_tool(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=600)


def read(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def by_kind(tensors):
    out = {k: {} for k in KINDS}
    for name, t in tensors.items():
        kind, _, tensor = name.partition(".")
        out[kind][tensor] = t
    return out


def matrix_names(path):
    with safe_open(path, "pt") as f:
        return {k for k in f.keys() if len(f.get_slice(k).get_shape()) == 2}


@pytest.fixture(scope="module", autouse=True)
def torch_threads():
    """The tool's --threads 1 and the noise probes set torch's thread count: put it back for the tests after."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def stories():
    if not SRC.is_file():
        pytest.skip(f"corpus file not found: {SRC} (see ../shared/corpus/SOURCES.md)")
    return SRC


@pytest.fixture(scope="module")
def tool():
    return load_tool()


@pytest.fixture(scope="module")
def calib(stories, tmp_path_factory):
    """The tool's output for the corpus model, written by the command line."""
    out = tmp_path_factory.mktemp("calib") / "calib.safetensors"
    r = run_tool(stories, "-o", out, "--seqs", SEQS, "--len", LEN, "--threads", 1)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stderr
    return out


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_every_linear_weight_has_all_three(calib, stories):
    tensors, meta = read(calib)
    kinds = by_kind(tensors)
    assert all(n.partition(".")[0] in KINDS for n in tensors)
    mats = matrix_names(stories)  # stories260K: the 35 linear weights and the (tied) embedding
    assert set(kinds["hessian"]) == mats
    assert set(kinds["importance"]) == mats
    with safe_open(stories, "pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    assert mats <= set(kinds["sensitivity"]) <= set(shapes)  # the norm vectors get one too
    for name in mats:
        n_in = shapes[name][-1]
        assert tuple(kinds["hessian"][name].shape) == (n_in, n_in), name
        assert tuple(kinds["importance"][name].shape) == (n_in,), name
    for name, s in kinds["sensitivity"].items():
        assert tuple(s.shape) == (), name
        assert torch.isfinite(s) and s > 0, name
    assert all(t.dtype == torch.float32 for t in tensors.values())
    assert meta["wcodec_calib_version"] == "1"
    assert meta["tokens"] == str(SEQS * LEN) and meta["seed"] == "4321"
    assert "stories260K" in meta["model"]


def test_hessian_symmetric_psd_and_diagonal_is_importance(calib):
    kinds = by_kind(read(calib)[0])
    for name, h in kinds["hessian"].items():
        h64 = h.double()
        assert torch.isfinite(h).all(), name
        assert torch.equal(h, h.T), name
        ev = torch.linalg.eigvalsh(h64)
        assert ev.min() >= -1e-6 * ev.max(), (name, ev.min().item(), ev.max().item())
        imp = kinds["importance"][name]
        assert (imp >= 0).all(), name
        assert torch.allclose(torch.diagonal(h), imp, rtol=1e-5, atol=0), name
    # q/k/v read the same input: the same statistics
    a = kinds["hessian"]["model.layers.2.self_attn.q_proj.weight"]
    assert torch.equal(a, kinds["hessian"]["model.layers.2.self_attn.v_proj.weight"])


def test_same_seed_same_bytes_other_seed_other_values(calib, stories, tool, tmp_path, offline):
    """A second run (in this process, the first was a subprocess) with the same seed writes the same bytes; a
    run with another seed samples other sequences and so other statistics."""
    same, other = tmp_path / "same.safetensors", tmp_path / "other.safetensors"
    common = ["--seqs", str(SEQS), "--len", str(LEN), "--threads", "1"]
    tool.main([str(stories), "-o", str(same)] + common)
    assert same.read_bytes() == calib.read_bytes()
    tool.main([str(stories), "-o", str(other), "--seed", "99"] + common)
    a, b = load_file(calib), load_file(other)
    assert a.keys() == b.keys()
    for k in a:
        assert not torch.equal(a[k], b[k]), k
    assert read(other)[1]["seed"] == "99"


def test_sensitivity_ranks_tensors_as_noise_hurts(calib, stories, tool):
    """Adding 5% relative Gaussian noise to one 2-D tensor at a time raises the mean next-token loss (on other
    sequences sampled from the model, antithetic pairs +-noise so the first-order term cancels) about as much
    as sensitivity * 0.05^2 predicts: rank correlation over the 36 tensors, and the median ratio."""
    torch.set_num_threads(1)
    sens = by_kind(read(calib)[0])["sensitivity"]
    model, _, _, _ = tool.load_model(str(stories))
    seqs = tool.sample_sequences(model, 8, 64, seed=999)

    def loss():
        with torch.no_grad():
            lg = model(input_ids=seqs[:, :-1]).logits.double()
            return torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), seqs[:, 1:].reshape(-1)).item()

    base = loss()
    gen = torch.Generator().manual_seed(7)
    names, measured = [], []
    for name, p in model.named_parameters():
        if p.dim() != 2:
            continue
        w = p.detach().clone()
        rise = []
        for _ in range(2):
            z = torch.randn(w.shape, generator=gen) * (0.05 * w.pow(2).mean().sqrt())
            pair = []
            for sign in (1, -1):
                with torch.no_grad():
                    p.copy_(w + sign * z)
                pair.append(loss())
            rise.append(sum(pair) / 2 - base)
        with torch.no_grad():
            p.copy_(w)
        names.append(name)
        measured.append(np.mean(rise))
    predicted = np.array([sens[n].item() * 0.05 ** 2 for n in names])
    measured = np.array(measured)
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    rho = np.corrcoef(rank(predicted), rank(measured))[0, 1]
    ratio = float(np.median(predicted / measured))
    print(f"sensitivity vs measured loss rise over {len(names)} tensors: spearman {rho:.3f}, "
          f"median predicted/measured {ratio:.2f}")
    assert len(names) == 36
    assert rho > 0.5
    assert 0.5 < ratio < 2


def test_folder_untied_text(stories, tool, tmp_path, offline):
    """An HF folder (config.json with model_type, model.safetensors, a tokenizer) with an untied lm_head, on
    --text: the lm_head gets its own statistics, the embedding (no linear layer reads it) none."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    state = load_file(stories)
    with safe_open(stories, "pt") as f:
        cfg = json.loads(f.metadata()["config"])
    folder = tmp_path / "model"
    folder.mkdir()
    state["lm_head.weight"] = state["model.embed_tokens.weight"].flip(0).contiguous()
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(dict(cfg, model_type="llama", tie_word_embeddings=False,
                                                        bos_token_id=1)))
    vocab = dict({"<unk>": 0, "<s>": 1}, **{f"w{i}": i for i in range(2, cfg["vocab_size"])})
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>").save_pretrained(folder)
    rng = np.random.default_rng(0)
    text = tmp_path / "text.txt"
    text.write_text(" ".join(f"w{i}" for i in rng.integers(2, cfg["vocab_size"], 300)))

    out = tmp_path / "calib.safetensors"
    tool.main([str(folder), "-o", str(out), "--text", str(text), "--seqs", "8", "--len", "64",
               "--sensitivity", "none", "--threads", "1"])
    tensors, meta = read(out)
    kinds = by_kind(tensors)
    assert meta["tokens"] == str(4 * 64) and meta["seqs"] == "4"  # 300 tokens: 4 windows of 64
    assert "text" in meta["source"]
    assert not kinds["sensitivity"]
    assert tuple(kinds["hessian"]["lm_head.weight"].shape) == (cfg["hidden_size"],) * 2
    assert "model.embed_tokens.weight" not in kinds["importance"]
    assert set(kinds["importance"]) == matrix_names(folder / "model.safetensors") - {"model.embed_tokens.weight"}


def test_max_hessian_dim_and_no_hessian(stories, tool, tmp_path, offline):
    out = tmp_path / "c.safetensors"
    tool.main([str(stories), "-o", str(out), "--seqs", "2", "--len", "16", "--max-hessian-dim", "100",
               "--sensitivity", "none", "--threads", "1"])
    kinds = by_kind(read(out)[0])
    assert kinds["hessian"] and all(h.shape[0] <= 100 for h in kinds["hessian"].values())
    assert "model.layers.0.mlp.down_proj.weight" in kinds["importance"]  # in = 172: importance only
    assert "model.layers.0.mlp.down_proj.weight" not in kinds["hessian"]
    tool.main([str(stories), "-o", str(out), "--seqs", "2", "--len", "16", "--no-hessian",
               "--sensitivity", "none", "--threads", "1"])
    kinds = by_kind(read(out)[0])
    assert not kinds["hessian"] and not kinds["sensitivity"] and len(kinds["importance"]) == 36


@pytest.mark.parametrize("case", ["missing", "no_config", "not_safetensors", "config_without_sizes", "empty_dir"])
def test_bad_input_fails_with_one_clear_line(tmp_path, case):
    """Reported before torch is even imported: exit status 1, one line naming the file and the problem."""
    if case == "missing":
        src, why = tmp_path / "nothing.safetensors", "no such file"
    elif case == "no_config":
        src, why = tmp_path / "w.safetensors", "no model config"
        save_file({"a.weight": torch.zeros(2, 2)}, src)
    elif case == "not_safetensors":
        src, why = tmp_path / "w.safetensors", "not a readable safetensors file"
        src.write_bytes(b"\xff" * 64)
    elif case == "config_without_sizes":
        src, why = tmp_path / "w.safetensors", "lacks hidden_size"
        save_file({"a.weight": torch.zeros(2, 2)}, src, metadata={"config": json.dumps({"vocab_size": 8})})
    else:
        src, why = tmp_path, "no model.safetensors"
    out = tmp_path / "out.safetensors"
    r = run_tool(src, "-o", out)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calibrate.py: ") and why in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_pack_with_the_calibration(calib, stories, tmp_path):
    """wcodec.pack(..., calib=FILE) takes the tool's output: GPTQ codes (another
    container than without it), a lossy model that verifies and loads."""
    wcodec = pytest.importorskip("wcodec")
    plain, cal = tmp_path / "plain.wcz", tmp_path / "calib.wcz"
    wcodec.pack(stories, plain, bits=4.25)
    wcodec.pack(stories, cal, bits=4.25, calib=calib)
    assert plain.read_bytes() != cal.read_bytes()
    wcodec.verify(cal)
    t = wcodec.numpy.load_file(cal)
    assert set(t) == set(read(stories)[0])
    with pytest.raises(wcodec.Error):
        wcodec.pack(stories, tmp_path / "x.wcz", bits=4.25, calib=tmp_path / "missing.safetensors")
