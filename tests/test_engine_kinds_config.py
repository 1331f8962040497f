"""The recipe side of the server and openai engine kinds: which keys each kind takes, how
`build_engine` maps them, the API key, and how `turnwise serve` shares out devices. No servers;
the engines against real servers are in test_engine_server.py and test_served_runs.py."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from turnwise.agent.engines import SamplingParams
from turnwise.trainer.config import EngineConfig
from turnwise.trainer.engine_factory import api_key, build_engine, refuse_training
from turnwise.trainer.recipe import RecipeError, load_recipe


def test_each_kind_takes_its_own_keys_and_refuses_the_others():
    server = EngineConfig(kind="server", urls=["http://10.0.0.5:8000"], max_batch=256)
    assert server.urls == ["http://10.0.0.5:8000"] and server.sync_dir is None
    refused = {
        "engine.kind='server' needs engine.urls": {"kind": "server"},
        "engine.urls is set with engine.kind='hf'": {"urls": ["http://a:1"]},
        "engine.sync_dir is set with engine.kind='vllm'": {"kind": "vllm", "sync_dir": "/x"},
        "engine.model is set with engine.kind='server'": {"kind": "server", "urls": ["u"],
                                                          "model": "m"},
        "needs engine.base_url and engine.model": {"kind": "openai", "base_url": "http://b"},
        "engine.device='cuda' with engine.kind='server'": {"kind": "server", "urls": ["u"],
                                                           "device": "cuda"},
        "engine.batch_wait_ms=20.0 applies to engine.kind='hf' only": {
            "kind": "openai", "base_url": "http://b", "model": "m", "batch_wait_ms": 20},
    }
    for message, keys in refused.items():
        with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
            EngineConfig(**keys)


def test_a_recipe_points_at_servers_from_the_command_line():
    cfg = load_recipe("household_gigpo", [
        "preset=cpu-tiny", "engine.kind=server",
        "engine.urls=[http://127.0.0.1:8000,http://127.0.0.1:8001]"])
    assert cfg.engine.urls == ["http://127.0.0.1:8000", "http://127.0.0.1:8001"]
    with pytest.raises(RecipeError, match="engine.urls"):
        load_recipe("household_gigpo", ["preset=cpu-tiny", "engine.kind=server"])


def test_the_api_key_comes_from_its_variable_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("TW_KEY_FOR_TEST", "sk-secret-value-91")
    assert api_key("TW_KEY_FOR_TEST") == "sk-secret-value-91"
    monkeypatch.delenv("TW_KEY_FOR_TEST")
    with pytest.raises(RecipeError, match="engine.api_key_env='TW_KEY_FOR_TEST'") as missing:
        api_key("TW_KEY_FOR_TEST")
    assert "sk-secret" not in str(missing.value)


def test_training_with_the_openai_kind_is_refused_with_the_reason():
    refuse_training(EngineConfig(kind="server", urls=["u"]))  # trains
    with pytest.raises(RecipeError, match="cannot train: a chat endpoint returns text"):
        refuse_training(EngineConfig(kind="openai", base_url="http://b", model="m"))


def test_openai_engine_sends_messages_only_and_refuses_token_level_settings(tokenizer,
                                                                          monkeypatch):
    from turnwise.agent.engines.base import ChatPrompt
    from turnwise.agent.engines.openai_chat import check_chat_sampling

    monkeypatch.setenv("TW_KEY_FOR_TEST", "unused")
    cfg = EngineConfig(kind="openai", base_url="http://127.0.0.1:9/v1", model="m",
                       api_key_env="TW_KEY_FOR_TEST", max_batch=4)
    engine = build_engine(cfg, "unused", tokenizer, dtype="float32", device="cpu")
    try:
        with pytest.raises(TypeError, match="carry none"):
            asyncio.run(engine.generate([1, 2, 3], SamplingParams()))
        with pytest.raises(RuntimeError, match="cannot load weights"):
            engine.load_weights([], version=1)
    finally:
        asyncio.run(engine.close())
    prompt = ChatPrompt([1, 2], [{"role": "user", "content": "hi"}])
    assert prompt == [1, 2] and prompt.messages == [{"role": "user", "content": "hi"}]
    check_chat_sampling(SamplingParams(temperature=0.7, top_p=0.9, stop=("\n",), seed=1))
    for bad in ({"top_k": 5}, {"top_logprobs": 3}, {"stop_token_ids": (2,)},
                {"ignore_eos": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            check_chat_sampling(SamplingParams(**bad))


def test_serve_gives_each_server_its_own_devices():
    from turnwise.trainer.serve import _device_slices

    assert _device_slices(2, ["0", "1"]) == ["0", "1"]
    assert _device_slices(2, [str(i) for i in range(8)]) == ["0,1,2,3", "4,5,6,7"]
    assert _device_slices(1, ["4", "5"]) == ["4,5"]
    with pytest.raises(ValueError, match="at most one server per device"):
        _device_slices(3, ["0", "1"])


def test_train_itself_refuses_an_engine_that_cannot_train(tmp_path):
    from turnwise.trainer.loop import train
    from turnwise.trainer.recipe import RecipeError, load_recipe

    cfg = load_recipe("household_grpo", ["engine.kind=openai", "engine.base_url=http://127.0.0.1:9",
                                         "engine.model=m", f"log.dir={tmp_path}"])
    with pytest.raises(RecipeError, match="cannot train"):
        train(cfg, echo=lambda *a: None)
    assert not any(tmp_path.iterdir())  # stopped before a run folder was made
