"""Shared fixtures: where the corpus and the built CLI are, and small models."""

import os
import pathlib
import shutil

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"


def corpus_files():
    return sorted(CORPUS.glob("*.safetensors")) if CORPUS.is_dir() else []


@pytest.fixture
def corpus():
    files = corpus_files()
    if not files:
        pytest.skip(f"corpus not found at {CORPUS}")
    return files


@pytest.fixture
def cli():
    """The wcodec tool of the CMake build (scripts/build.sh), for comparing with what the tool writes."""
    p = os.environ.get("WCODEC_CLI") or str(ROOT / "build" / "wcodec")
    if not (os.path.isfile(p) and os.access(p, os.X_OK)):
        p = shutil.which("wcodec")
    if not p:
        pytest.skip("the wcodec tool is not built (scripts/build.sh)")
    return p


def weights(shape, seed=0, scale=0.02):
    """Weight-like float32 values: Gaussian with a per-row scale."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32)
    if len(shape) >= 2:
        w *= (scale * np.exp(rng.standard_normal((shape[0],) + (1,) * (len(shape) - 1)) * 0.3)).astype(np.float32)
    return w * np.float32(scale if len(shape) < 2 else 1)
