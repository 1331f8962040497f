"""What only the vllm engine does: the settings it refuses, and what it says when vLLM is absent.

The behaviour every engine shares is in test_engine_contract.py.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from turnwise.agent.engines import SamplingParams, make_engine

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.vllm
@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed in this venv; `make test` runs "
                                         "the vllm tests in .venv-vllm")
def test_settings_vllm_cannot_honour_are_refused(tiny_path, tokenizer):
    from turnwise.agent.engines.vllm import check_sampling
    from vllm.platforms import current_platform

    check_sampling(SamplingParams(temperature=0.7, top_logprobs=5))
    with pytest.raises(ValueError, match="top_k=5"):
        check_sampling(SamplingParams(top_k=5))
    with pytest.raises(ValueError, match="top_p=0.9"):
        check_sampling(SamplingParams(top_p=0.9))
    # These fail before any process starts.
    with pytest.raises(TypeError, match="not a loaded module"):
        make_engine("vllm", torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="engine.batch_wait_ms=20"):
        make_engine("vllm", tiny_path, tokenizer, batch_wait_ms=20)
    elsewhere = "cuda" if current_platform.device_type == "cpu" else "cpu"
    with pytest.raises(ValueError, match=f"engine.device='{elsewhere}'"):
        make_engine("vllm", tiny_path, tokenizer, device=elsewhere)


@pytest.mark.skipif(HAS_VLLM, reason="checks the message shown where vLLM is absent")
def test_missing_vllm_says_how_to_get_it(tiny_path):
    with pytest.raises(ImportError, match="make vllm-venv"):
        make_engine("vllm", tiny_path)
