#!/usr/bin/env python3
"""calibrate.py: writes a wcodec calibration file (spec/CALIB.md) for a Hugging Face causal LM.

  calibrate.py MODEL -o CALIB.safetensors [--text FILE] [--seqs N] [--len L] [--seed S]
               [--no-hessian] [--max-hessian-dim D] [--sensitivity {grad,none}]
               [--batch B] [--device DEV] [--threads T]

MODEL is a folder (config.json, model.safetensors or a sharded index, optionally a tokenizer) or one
.safetensors file whose __metadata__['config'] is the model's config JSON (else a config.json beside it).
Nothing is downloaded.

Calibration data: --text FILE, tokenized with the tokenizer of MODEL's folder, cut into N windows of L tokens,
each after BOS; without --text, N sequences of L tokens sampled from the model itself (BOS first, temperature 1,
inverse-CDF draws from torch.Generator().manual_seed(S), batches of 64: the style of ../shared/tools/kld_eval.py,
whose default evaluation sequences come from numpy's generator, so they are not these).

For every nn.Linear whose weight is a tensor of the model's file (with tied embeddings, the lm_head under the
embedding's name, as kld_eval.py --imatrix names it), over all N*L input rows x:
  importance.NAME  F32 [in]      mean of x*x per input channel
  hessian.NAME     F32 [in, in]  mean of x x^T (accumulated in float64; skipped with --no-hessian or in > D)
For every floating tensor of the model's file (--sensitivity grad, the default):
  sensitivity.NAME F32 []        0.5 * ||W||^2 / numel(W) * tr(F_W): the expected rise of the mean next-token
                                 loss (nats) per unit of relative squared error, for isotropic noise in W.
tr(F_W), the trace of the per-token Fisher information for W, is estimated as sum_q ||G_q||^2 / (N*L), G_q the
gradient of sequence q's summed loss against next tokens drawn from the model's own prediction (a generator
seeded S + 1), one backward pass per sequence (spec/CALIB.md section 4).
Same inputs, seed, device, thread count and library versions: the same bytes.
"""
import argparse
import inspect
import json
import os
import sys
import time

DEFAULT_SEQS, DEFAULT_LEN, DEFAULT_SEED = 64, 256, 4321  # N and L as kld_eval.py's defaults; a seed other than its 1234
SAMPLE_BATCH = 64
CALIB_VERSION = "1"
# llama2.c-style config keys, accepted as kld_eval.py accepts them
ALIASES = {"dim": "hidden_size", "hidden_dim": "intermediate_size", "n_layers": "num_hidden_layers",
           "n_heads": "num_attention_heads", "n_kv_heads": "num_key_value_heads", "norm_eps": "rms_norm_eps"}
LLAMA_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


class CalibError(Exception):
    """A problem with the user's input: reported as one line, exit status 1."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# -- the model ----------------------------------------------------------------------------------

def safetensors_header(path):
    """(tensor names, metadata) of one .safetensors file, from its header alone."""
    import struct
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("shorter than 8 bytes")
            n = struct.unpack("<Q", head)[0]
            if n > 100 << 20:
                raise ValueError(f"header length {n} is implausible")
            h = json.loads(f.read(n))
        if not isinstance(h, dict):
            raise ValueError("header is not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise CalibError(f"{path}: not a readable safetensors file ({e})") from None
    meta = h.pop("__metadata__", None) or {}
    return set(h), meta


def model_files(folder):
    """The .safetensors files of an HF folder: model.safetensors, or the shards of its index."""
    single = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(single):
        return [single]
    if os.path.isfile(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        return [os.path.join(folder, s) for s in shards]
    raise CalibError(f"{folder}: no model.safetensors or model.safetensors.index.json")


def normalize_config(c, where):
    """The config dict with llama2.c-style keys renamed; one without model_type (a Llama) must give its sizes."""
    if not isinstance(c, dict):
        raise CalibError(f"{where}: the config is not a JSON object")
    c = dict(c)
    for k, v in ALIASES.items():
        if k in c and v not in c:
            c[v] = c.pop(k)
    if not c.get("model_type"):  # LlamaConfig's defaults are a 7B model: never build that by accident
        need = [k for k in LLAMA_KEYS if k not in c]
        if need:
            raise CalibError(f"{where}: the config has no model_type and lacks {', '.join(need)} for a Llama model")
    return c


def config_from_dict(c):
    """A transformers config from a normalized config dict: AutoConfig.for_model when it names its model_type,
    else Llama (the only architecture kld_eval.py knows), with kld_eval.py's default rms_norm_eps of 1e-5."""
    from transformers import AutoConfig, LlamaConfig
    c = dict(c)
    mt = c.pop("model_type", None)
    try:
        if mt:
            return AutoConfig.for_model(mt, **c)
        c.setdefault("rms_norm_eps", 1e-5)
        return LlamaConfig(**c)
    except (ValueError, TypeError, KeyError) as e:
        raise CalibError(f"config: {e}") from None


def read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise CalibError(f"{path}: cannot read {what} ({e})") from None


def resolve_model(path):
    """(the model's .safetensors files, its config dict, the folder to look for a tokenizer in), from headers
    and JSON alone (no torch: bad input is reported at once)."""
    if not os.path.exists(path):
        raise CalibError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        folder, files = path, model_files(path)
        cfg_path = os.path.join(folder, "config.json")
        if not os.path.isfile(cfg_path):
            raise CalibError(f"{folder}: no config.json")
        cfg = read_json(cfg_path, "the config")
    else:
        folder, files = os.path.dirname(os.path.abspath(path)), [path]
        cfg = safetensors_header(path)[1].get("config")
        if cfg is None:
            side = os.path.join(folder, "config.json")
            if not os.path.isfile(side):
                raise CalibError(f"{path}: no model config (neither __metadata__['config'] nor a config.json "
                                 "beside it)")
            cfg = read_json(side, "the config")
        elif isinstance(cfg, str):
            try:
                cfg = json.loads(cfg)
            except ValueError as e:
                raise CalibError(f"{path}: __metadata__['config'] is not JSON ({e})") from None
    cfg = normalize_config(cfg, path)
    for fn in files:
        if not os.path.isfile(fn):
            raise CalibError(f"{fn}: no such file")
        safetensors_header(fn)
    return files, cfg, folder


def load_model(path, device="cpu"):
    """(model in float32, eval mode; the tensor names of its file(s); a short description; the folder to look
    for a tokenizer in)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    files, cfg_dict, folder = resolve_model(path)
    cfg = config_from_dict(cfg_dict)
    names, state = set(), {}
    for fn in files:
        names |= safetensors_header(fn)[0]
        state.update(load_file(fn))
    torch.manual_seed(0)  # the initial values are all overwritten; fixed anyway
    try:
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    except (ValueError, KeyError) as e:
        raise CalibError(f"{path}: cannot build a causal LM from the config ({e})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        res = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CalibError(f"{path}: the tensors do not fit the config's model ({e})") from None
    # a tied lm_head is absent from the file and present in state_dict(): missing only by name
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {id(p) for n, p in params.items() if n in state}
    missing = [k for k in res.missing_keys if k in params and id(params[k]) not in loaded]
    if missing:
        raise CalibError(f"{path}: the file lacks tensors the model needs: {', '.join(missing[:5])}"
                         + (" ..." if len(missing) > 5 else ""))
    if res.unexpected_keys:
        raise CalibError(f"{path}: tensors the {type(model).__name__} of the config does not have: "
                         f"{', '.join(res.unexpected_keys[:5])}" + (" ..." if len(res.unexpected_keys) > 5 else ""))
    desc = f"{os.path.basename(os.path.normpath(path))} ({type(model).__name__}, {cfg.model_type})"
    return model.to(device).eval(), names, desc, folder


def file_name_of(model, names):
    """id(parameter) -> its name in the model's file (a tied parameter has the name of the one stored)."""
    out = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        if n in names:
            out.setdefault(id(p), n)
    return out


# -- calibration data ---------------------------------------------------------------------------

def bos_id(model, tokenizer=None):
    b = model.config.bos_token_id
    if isinstance(b, (list, tuple)):
        b = b[0] if b else None
    if b is None and tokenizer is not None:
        b = tokenizer.bos_token_id
    return b


def draw(logits, gen):
    """One token per row of `logits` [B, V] at temperature 1: inverse CDF of a uniform from `gen`, in float64
    on the CPU (kld_eval.py's rule, so the draws do not depend on the device's arithmetic beyond the logits)."""
    import torch
    lg = logits.detach().to("cpu", torch.float64)
    p = torch.exp(lg - lg.max(-1, keepdim=True).values)
    c = torch.cumsum(p, -1)
    u = torch.rand(lg.shape[0], generator=gen, dtype=torch.float64) * c[:, -1]
    return torch.clamp((c < u[:, None]).sum(-1), max=lg.shape[-1] - 1)


def sample_sequences(model, n, length, seed):
    """[n, length + 1] int64: BOS, then `length` tokens sampled from the model at temperature 1."""
    import torch
    bos = bos_id(model)
    if bos is None:
        raise CalibError("the config has no bos_token_id to start sampled sequences with (give --text)")
    maxpos = getattr(model.config, "max_position_embeddings", None)
    if maxpos is not None and length + 1 > maxpos:
        raise CalibError(f"--len {length} exceeds max_position_embeddings {maxpos}")
    dev = next(model.parameters()).device
    # the KV cache is `cache` since transformers 5.2x, `past_key_values` before
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty((n, length + 1), dtype=torch.int64)
    with torch.no_grad():
        for b0 in range(0, n, SAMPLE_BATCH):
            b = min(SAMPLE_BATCH, n - b0)
            tok = torch.full((b, 1), bos, dtype=torch.int64)
            out[b0:b0 + b, 0] = bos
            cache = None
            for t in range(length):
                o = model(input_ids=tok.to(dev), use_cache=True, **{cache_arg: cache})
                cache = getattr(o, cache_arg)
                nxt = draw(o.logits[:, -1], gen)
                out[b0:b0 + b, t + 1] = nxt
                tok = nxt[:, None]
    return out


def text_sequences(model, folder, text_path, n, length):
    """Up to n windows of `length` tokens of the text, each after BOS: [m, length + 1], m <= n."""
    import torch
    if not any(os.path.isfile(os.path.join(folder, f)) for f in TOKENIZER_FILES):
        raise CalibError(f"--text needs a tokenizer; there is none in {folder}")
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    try:
        with open(text_path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise CalibError(f"--text {text_path}: {e}") from None
    ids = tok(text, add_special_tokens=False)["input_ids"]
    bos = bos_id(model, tok)
    if bos is None:
        raise CalibError("neither the config nor the tokenizer names a BOS token")
    m = min(n, len(ids) // length)
    if m == 0:
        raise CalibError(f"--text {text_path}: {len(ids)} tokens, fewer than one window of --len {length}")
    if m < n:
        log(f"note: --text gives {m} windows of {length} tokens, not {n}")
    seqs = torch.empty((m, length + 1), dtype=torch.int64)
    seqs[:, 0] = bos
    seqs[:, 1:] = torch.tensor(ids[:m * length], dtype=torch.int64).view(m, length)
    return seqs


# -- statistics ---------------------------------------------------------------------------------

class InputStats:
    """Forward pre-hooks on linear layers: per layer, the sum over input rows x of x*x (and of x x^T), in
    float64. Layers fed the same tensor in one forward pass (q/k/v, gate/up) share its products."""

    def __init__(self, targets, hessian_names):
        self.targets = targets  # [(module, file name)]
        self.hessian_names = hessian_names
        self.sq, self.xx, self.rows = {}, {}, {}
        self._seen = {}  # id(input) -> (input, sum x*x, sum x x^T or None, version); cleared after each forward
        self._handles = []

    def __enter__(self):
        for mod, name in self.targets:
            self._handles.append(mod.register_forward_pre_hook(self._hook(name), with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._seen.clear()

    def end_forward(self):
        self._seen.clear()

    def _hook(self, name):
        def hook(module, args, kwargs):
            import torch
            x = args[0] if args else kwargs["input"]
            want_xx = name in self.hessian_names
            hit = self._seen.get(id(x))
            if hit is None or hit[0] is not x or hit[3] != x._version or (want_xx and hit[2] is None):
                x2 = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)
                xx = x2.T @ x2 if want_xx else None
                hit = (x, (x2 * x2).sum(0), xx, x._version)
                self._seen[id(x)] = hit  # holds x, so its id is not reused within this forward
            rows = x.numel() // x.shape[-1]
            self.sq[name] = self.sq.get(name, 0) + hit[1]
            if want_xx:
                self.xx[name] = self.xx.get(name, 0) + hit[2]
            self.rows[name] = self.rows.get(name, 0) + rows
        return hook


def linear_targets(model, fname):
    """[(module, file name)] of the nn.Linear layers whose weight is a tensor of the file, in module order."""
    import torch
    out, skipped = [], []
    for mname, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            n = fname.get(id(mod.weight))
            (out.append((mod, n)) if n else skipped.append(mname))
    if skipped:
        log(f"note: {len(skipped)} linear layers have no weight of that name in the file, skipped: "
            f"{', '.join(skipped[:5])}")
    names = [n for _, n in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CalibError(f"one weight feeds several linear layers: {', '.join(dup[:5])}")
    return out


def calibrate(model, seqs, names, hessian=True, max_hessian_dim=0, sensitivity="grad", seed=DEFAULT_SEED,
              batch=16, progress=True):
    """The calibration tensors (name -> float32 torch tensor) of `model` on `seqs` [N, L + 1]: the model reads
    seqs[:, :-1]. `names`: the tensor names of the model's file."""
    import torch
    import torch.nn.functional as F
    fname = file_name_of(model, names)
    targets = linear_targets(model, fname)
    hess = set()
    if hessian:
        for mod, n in targets:
            if max_hessian_dim and mod.in_features > max_hessian_dim:
                log(f"note: no hessian for {n} (in {mod.in_features} > --max-hessian-dim {max_hessian_dim})")
            else:
                hess.add(n)
    dev = next(model.parameters()).device
    inputs = seqs[:, :-1]
    n_seq, n_tok = inputs.shape[0], inputs.numel()
    params = [(fname[id(p)], p) for p in model.parameters() if id(p) in fname and p.is_floating_point()]
    g2 = {n: torch.zeros((), dtype=torch.float64) for n, _ in params}
    label_gen = torch.Generator().manual_seed(seed + 1)
    t0 = time.time()
    with InputStats(targets, hess) as st:
        if sensitivity == "grad":
            # one sequence per backward pass: ||grad of its summed loss||^2 estimates the sum of its tokens'
            # squared per-token gradients without bias (the drawn labels' scores have mean zero; CALIB.md 4)
            for p in model.parameters():
                p.requires_grad_(True)
            for i in range(n_seq):
                logits = model(input_ids=inputs[i:i + 1].to(dev), use_cache=False).logits[0].float()
                st.end_forward()
                labels = draw(logits, label_gen).to(dev)
                loss = F.cross_entropy(logits, labels, reduction="sum")
                model.zero_grad(set_to_none=True)
                loss.backward()
                for n, p in params:
                    if p.grad is not None:
                        g2[n] += p.grad.detach().to(torch.float64).pow(2).sum().cpu()
                if progress and (i + 1) % 16 == 0:
                    log(f"  {i + 1}/{n_seq} sequences ({time.time() - t0:.1f} s)")
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                for b0 in range(0, n_seq, batch):
                    model(input_ids=inputs[b0:b0 + batch].to(dev), use_cache=False)
                    st.end_forward()
    out = {}
    for _, n in targets:
        rows = st.rows[n]
        out["importance." + n] = (st.sq[n] / rows).to("cpu", torch.float32)
        if n in hess:
            h = st.xx[n] / rows
            out["hessian." + n] = ((h + h.T) * 0.5).to("cpu", torch.float32)
    if sensitivity == "grad":
        for n, p in params:
            w = p.detach().to(torch.float64)
            tr_f = g2[n] / n_tok
            out["sensitivity." + n] = (0.5 * w.pow(2).sum().cpu() / w.numel() * tr_f).to(torch.float32)
    return {k: v.contiguous() for k, v in sorted(out.items())}


def save(path, tensors, metadata):
    """Writes F32 `tensors` as safetensors, byte for byte a function of its arguments (safetensors' own writer
    orders __metadata__ differently from run to run): header keys sorted, __metadata__ first, the header padded
    with spaces to a multiple of 8 bytes, data in name order. A temporary file beside `path` is renamed into
    place."""
    import struct
    import torch
    hdr, blobs, off = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        b = tensors[name].detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()
        hdr[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(hdr, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hj)))
            f.write(hj)
            for b in blobs:
                f.write(b)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise CalibError(f"{path}: cannot write ({e})") from None


def main(argv=None):
    ap = argparse.ArgumentParser(prog="calibrate.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="HF model folder, or a .safetensors with __metadata__['config']")
    ap.add_argument("-o", "--output", required=True, help="the calibration file to write")
    ap.add_argument("--text", help="calibrate on this UTF-8 text (needs a tokenizer in the model's folder)")
    ap.add_argument("--seqs", type=int, default=DEFAULT_SEQS, help=f"sequences (default {DEFAULT_SEQS})")
    ap.add_argument("--len", type=int, default=DEFAULT_LEN, help=f"tokens per sequence (default {DEFAULT_LEN})")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    ap.add_argument("--no-hessian", action="store_true", help="write no hessian.* entries")
    ap.add_argument("--max-hessian-dim", type=int, default=0, metavar="D",
                    help="no hessian for weights with more than D inputs (default 0: no limit; a hessian "
                         "takes 8*in^2 bytes while it is accumulated)")
    ap.add_argument("--sensitivity", choices=("grad", "none"), default="grad",
                    help="grad: Fisher-trace estimate from gradients (default); none: no sensitivity.* entries")
    ap.add_argument("--batch", type=int, default=16, help="sequences per forward pass without gradients")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads for torch (default 0: torch's choice; 1 is fastest for small models on a busy "
                         "machine)")
    a = ap.parse_args(argv)
    if a.threads < 0:
        ap.error("--threads must be >= 0")
    for k in ("seqs", "len", "batch"):
        if getattr(a, k) < 1:
            ap.error(f"--{k} must be >= 1")
    if a.max_hessian_dim < 0:
        ap.error("--max-hessian-dim must be >= 0")
    if not 0 <= a.seed < 2 ** 63 - 1:
        ap.error("--seed must be in [0, 2^63 - 1)")
    t0 = time.time()
    try:
        resolve_model(a.model)  # bad input is reported before torch is imported
        if a.text and not os.path.isfile(a.text):
            raise CalibError(f"--text {a.text}: no such file")
    except CalibError as e:
        sys.exit(f"calibrate.py: {e}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as e:
        sys.exit(f"calibrate.py: needs torch and transformers ({e})")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    try:
        model, names, desc, folder = load_model(a.model, a.device)
        if a.text:
            seqs, source = text_sequences(model, folder, a.text, a.seqs, a.len), f"text {os.path.basename(a.text)}"
        else:
            seqs, source = sample_sequences(model, a.seqs, a.len, a.seed), "sampled from the model"
        t1 = time.time()
        log(f"{desc}: {seqs.shape[0]} x {a.len} tokens {source} ({t1 - t0:.1f} s)")
        out = calibrate(model, seqs, names, hessian=not a.no_hessian, max_hessian_dim=a.max_hessian_dim,
                        sensitivity=a.sensitivity, seed=a.seed, batch=a.batch)
        meta = {"wcodec_calib_version": CALIB_VERSION, "model": desc, "tokens": str(seqs.shape[0] * a.len),
                "seed": str(a.seed), "source": source, "seqs": str(seqs.shape[0]), "len": str(a.len),
                "sensitivity": "fisher-trace-mc" if a.sensitivity == "grad" else "none"}
        save(a.output, out, meta)
    except CalibError as e:
        sys.exit(f"calibrate.py: {e}")
    kinds = {k: sum(1 for n in out if n.startswith(k + ".")) for k in ("hessian", "importance", "sensitivity")}
    log(f"wrote {a.output}: " + ", ".join(f"{v} {k}" for k, v in kinds.items())
        + f" ({time.time() - t0:.1f} s, calibration {time.time() - t1:.1f} s)")


if __name__ == "__main__":
    main()
