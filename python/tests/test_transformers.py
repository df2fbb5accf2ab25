"""Hugging Face transformers interop (the recipes of docs/python_interop.md):
a .wcz loads into a transformers model with load_state_dict(strict=True),
a save_pretrained() folder packs and unpacks to a folder from_pretrained()
reads, and a .wcz converts back to a model.safetensors the hub tools read.
Every comparison is exact: parameters and logits with torch.equal."""

import json
import os
import pathlib
import shutil

import pytest

torch = pytest.importorskip("torch", reason="test_transformers needs torch (pip install torch)")
transformers = pytest.importorskip(
    "transformers", reason="test_transformers needs Hugging Face transformers (pip install transformers)")

import safetensors.torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM  # noqa: E402

import wcodec  # noqa: E402
import wcodec.torch  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = pathlib.Path(os.environ.get("WCODEC_CORPUS_DIR") or ROOT.parent / "shared" / "corpus")

# stories260K (../shared/corpus/SOURCES.md): dim 64, 5 layers, 8 heads, 4 KV
# heads, vocab 512, tied embeddings. The head count is not recoverable from the
# tensor shapes (q_proj is dim x dim whatever it is); the rest is.
STORIES_HEADS = 8
TOKENS = [[1, 403, 407, 261, 378, 288, 266, 311, 267, 455, 262, 1]]  # a few ids < vocab 512
TORCH_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Nothing may be downloaded. huggingface_hub reads HF_HUB_OFFLINE when it
    is imported, so the environment variable alone comes too late for this
    process: its constant is patched as well (is_offline_mode() reads it), and
    every from_pretrained() below also passes local_files_only=True."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    try:
        import huggingface_hub.constants as hc
        monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True, raising=False)
    except ImportError:
        pass


def dtype_kw(dtype):
    """The dtype keyword of from_config/from_pretrained: `dtype` since
    transformers 4.56, `torch_dtype` before."""
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def build(cfg, dtype):
    """A model built from its config in `dtype`. Not LlamaForCausalLM(cfg).to(dtype):
    that casts the rotary inv_freq buffer too, which from_pretrained keeps in
    float32, and the logits then differ in the last bits."""
    return AutoModelForCausalLM.from_config(cfg, **dtype_kw(dtype)).eval()


def from_pretrained(path):
    """from_pretrained keeping the saved dtype ("auto"), never downloading."""
    return AutoModelForCausalLM.from_pretrained(path, local_files_only=True, **dtype_kw("auto")).eval()


def logits(model, ids=TOKENS):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits


def assert_same_parameters(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k


# -- the corpus model --------------------------------------------------------------

def stories_config(state, metadata):
    """The LlamaConfig of a stories260K state dict, worked out from its tensor
    shapes (and the head count of SOURCES.md), checked against the config
    JSON the file carries in __metadata__."""
    emb = state["model.embed_tokens.weight"]
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("model.layers."))
    head_dim = emb.shape[1] // STORIES_HEADS
    derived = {
        "vocab_size": emb.shape[0],
        "hidden_size": emb.shape[1],
        "intermediate_size": state["model.layers.0.mlp.gate_proj.weight"].shape[0],
        "num_hidden_layers": layers,
        "num_attention_heads": STORIES_HEADS,
        "num_key_value_heads": state["model.layers.0.self_attn.k_proj.weight"].shape[0] // head_dim,
        "tie_word_embeddings": "lm_head.weight" not in state,
    }
    stored = json.loads((metadata or {}).get("config", "{}"))
    for k, v in derived.items():
        if k in stored:
            assert stored[k] == v, f"{k}: the shapes say {v}, __metadata__ says {stored[k]}"
    # llama2.c: seq_len 512, norm eps 1e-5 (LlamaConfig's default is 1e-6), rope theta 10000 (the default)
    return LlamaConfig(**{"max_position_embeddings": 512, "rms_norm_eps": 1e-5, **stored, **derived})


def load_into(cfg, state, dtype):
    """A LlamaForCausalLM built from `cfg` in `dtype`, loaded with strict=True.
    A tied model's file has no lm_head.weight (save_pretrained leaves it out)
    while its state_dict() lists it: name it as the embedding, which is the
    same parameter."""
    torch.manual_seed(1234)  # the initial values are all overwritten; fixed anyway
    model = build(cfg, dtype)
    assert isinstance(model, LlamaForCausalLM)
    state = dict(state)
    if cfg.tie_word_embeddings and "lm_head.weight" not in state:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model.load_state_dict(state, strict=True)
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied
    return model


@pytest.mark.parametrize("variant", ["bf16", "f16", "f32"])
def test_corpus_stories260k_loads_into_llama(tmp_path, variant):
    src = CORPUS / f"stories260K_llama_hf_{variant}.safetensors"
    if not src.is_file():
        pytest.skip(f"corpus file not found: {src} (see ../shared/corpus/SOURCES.md)")

    packed = tmp_path / "model.safetensors.wcz"
    wcodec.pack(src, packed)
    state = wcodec.torch.load_file(packed)
    ref = safetensors.torch.load_file(src)
    assert state.keys() == ref.keys()
    for k in ref:
        assert state[k].dtype == ref[k].dtype and torch.equal(state[k], ref[k]), k

    with wcodec.safe_open(packed, framework="pt") as f:
        metadata = f.metadata()
    with safe_open(src, framework="pt") as f:
        assert metadata == f.metadata()
    cfg = stories_config(state, metadata)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.vocab_size) == (64, 5, 4, 512)
    dtype = TORCH_DTYPES[{"bf16": "BF16", "f16": "F16", "f32": "F32"}[variant]]
    assert state["model.embed_tokens.weight"].dtype == dtype

    ours = load_into(cfg, state, dtype)
    theirs = load_into(cfg, ref, dtype)
    for k, v in ours.state_dict().items():
        assert torch.equal(v, (ref.get(k) if k in ref else ref["model.embed_tokens.weight"])), k
    a, b = logits(ours), logits(theirs)
    assert a.shape == (1, len(TOKENS[0]), 512) and a.dtype == dtype
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    # a trained model, not an initialisation: its next-token choices are confident
    assert torch.softmax(a.float(), -1).amax(-1).mean() > 0.2


# -- a save_pretrained() folder ------------------------------------------------------

def tiny_llama(dtype, tied):
    cfg = LlamaConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=8,
                      num_key_value_heads=4, vocab_size=512, max_position_embeddings=128,
                      rms_norm_eps=1e-5, tie_word_embeddings=tied)
    torch.manual_seed(0)
    return build(cfg, dtype)


@pytest.mark.parametrize("dtype,tied", [(torch.bfloat16, True), (torch.float32, False)],
                         ids=["bf16-tied", "f32-untied"])
def test_save_pretrained_folder_round_trip(tmp_path, dtype, tied):
    model = tiny_llama(dtype, tied)
    src = tmp_path / "tiny-llama"
    model.save_pretrained(src)
    files = sorted(p.name for p in src.iterdir())
    assert "config.json" in files and "model.safetensors" in files

    # pack the folder: model.safetensors as tensors, config.json & co. as blobs
    packed = tmp_path / "tiny-llama.wcz"
    wcodec.pack(src, packed)
    with wcodec.Container(packed) as c:
        kinds = {f.name: f.kind for f in c.files}
    assert kinds.pop("model.safetensors") == "safetensors"
    assert set(kinds) == set(files) - {"model.safetensors"} and set(kinds.values()) == {"blob"}
    wcodec.verify(packed)

    # unpack restores the folder byte for byte, and from_pretrained reads it
    out = tmp_path / "restored"
    wcodec.unpack(packed, out)
    assert sorted(p.name for p in out.iterdir()) == files
    for name in files:
        assert (out / name).read_bytes() == (src / name).read_bytes(), name
    restored = from_pretrained(out)
    assert restored.dtype == dtype
    assert (restored.lm_head.weight is restored.model.embed_tokens.weight) == tied
    assert_same_parameters(model, restored)
    ref = logits(model)
    assert torch.equal(logits(restored), ref)

    # the tensors straight into a model built from the config (strict loading)
    state = wcodec.torch.load_file(packed)
    assert ("lm_head.weight" in state) == (not tied)  # save_pretrained leaves a tied head out
    loaded = load_into(model.config, state, dtype)
    assert_same_parameters(model, loaded)
    assert torch.equal(logits(loaded), ref)

    # .wcz -> tensors -> safetensors.torch.save_file: a model.safetensors the
    # hub tools read, once config.json lies beside it
    conv = tmp_path / "converted"
    conv.mkdir()
    safetensors.torch.save_file(state, conv / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(out / "config.json", conv / "config.json")
    converted = from_pretrained(conv)
    assert converted.dtype == dtype
    assert_same_parameters(model, converted)
    assert torch.equal(logits(converted), ref)


def test_single_file_container_unpacks_byte_identical(tmp_path):
    """wcodec.unpack("model.safetensors.wcz", "model.safetensors") gives back
    the very file save_pretrained wrote, so from_pretrained reads it."""
    model = tiny_llama(torch.bfloat16, True)
    src = tmp_path / "saved"
    model.save_pretrained(src)
    packed = tmp_path / "model.safetensors.wcz"
    wcodec.pack(src / "model.safetensors", packed)

    out = tmp_path / "out"
    out.mkdir()
    wcodec.unpack(packed, out / "model.safetensors")
    assert (out / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    shutil.copy(src / "config.json", out / "config.json")
    restored = from_pretrained(out)
    assert_same_parameters(model, restored)
    assert torch.equal(logits(restored), logits(model))
