"""The tiny-model builder: tokenizers trained here, loaded back through `from_pretrained`."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer
from turnwise.agent.tiny import TinySpec, build_tiny

CORPUS = ["What is the occupation of Gipei Taishein?",
          "<search>Gipei Taishein occupation</search>",
          "Gipei Taishein is a novelist born in Troux in 1934."] * 20


def _pieces(tokenizer, text: str) -> list[str]:
    return [tokenizer.decode([i]) for i in tokenizer(text)["input_ids"]]


def test_space_tokens_give_a_word_one_id_wherever_it_stands(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNWISE_CACHE", str(tmp_path))
    spec = dict(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                vocab_size=512)
    plain = AutoTokenizer.from_pretrained(build_tiny("t", CORPUS, TinySpec(**spec)))
    spaced = AutoTokenizer.from_pretrained(
        build_tiny("t", CORPUS, TinySpec(**spec, space_tokens=True)))
    question, query = "What is the occupation of Gipei Taishein?", "<search>Gipei Taishein</search>"
    # Byte-level BPE glues the space to the word: " Gipei" and "Gipei" are unrelated ids.
    assert " Gipei" in _pieces(plain, question) and "Gipei" in _pieces(plain, query)
    assert _pieces(spaced, question) == ["What", " ", "is", " ", "the", " ", "occupation", " ",
                                         "of", " ", "Gipei", " ", "Taishein", "?"]
    assert _pieces(spaced, query) == ["<search>", "Gipei", " ", "Taishein", "</search>"]
    for text in (question, query, "a  b\n\n c 1934 x "):  # decoding gives the text back
        assert spaced.decode(spaced(text)["input_ids"]) == text


def test_digit_group_splits_numbers_before_bpe(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNWISE_CACHE", str(tmp_path))
    spec = dict(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                vocab_size=512, space_tokens=True)
    corpus = CORPUS + ["Split 326990 items among 76 people.", "<python>print(326990 % 76)</python>"] * 20
    plain = AutoTokenizer.from_pretrained(build_tiny("t", corpus, TinySpec(**spec)))
    code = "<python>print(326990 % 76)</python>"
    assert "326990" in _pieces(plain, code)  # BPE learnt the frequent number as one id
    for group, number in ((1, ["3", "2", "6", "9", "9", "0"]), (2, ["32", "69", "90"]),
                          (3, ["326", "990"])):
        grouped = AutoTokenizer.from_pretrained(  # reloaded: the split rule is in the files
            build_tiny("t", corpus, TinySpec(**spec, digit_group=group)))
        assert _pieces(grouped, code) == ["<python>", "print", "(", *number, " ", "%", " ",
                                          *(["7", "6"] if group == 1 else ["76"]), ")",
                                          "</python>"]
        assert grouped.decode(grouped("born in 1934, 12 x 3")["input_ids"]) == "born in 1934, 12 x 3"


def test_digit_group_is_checked_and_unset_keeps_older_cache_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("TURNWISE_CACHE", str(tmp_path))
    spec = dict(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                vocab_size=512)
    # the folder this spec and corpus had before `digit_group` existed
    assert build_tiny("t", CORPUS, TinySpec(**spec)).name == "t-7dd70a833860c1ae"
    with pytest.raises(ValueError, match="model.tiny.digit_group=-1: must be >= 0"):
        TinySpec(**spec, digit_group=-1)
