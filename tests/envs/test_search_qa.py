"""Search QA: SQuAD metrics by hand, multi-hop questions that follow the knowledge base, loaders."""

from __future__ import annotations

import json

import pytest
from turnwise.envs.scripted import ScriptStep, tag_render
from turnwise.envs.search_qa import (
    SearchQATasks,
    contains_answer,
    exact_match,
    extract_answer,
    f1_score,
    normalize_answer,
)
from turnwise.envs.search_qa.kb import build_kb


def test_squad_normalisation_em_and_f1():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("a cat and an owl") == "cat and owl"
    assert exact_match("the Eiffel Tower.", ["Eiffel Tower"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel Tower"]) == 0.0
    # "paris france" vs "paris": 1 common token; precision 1/2, recall 1/1 -> F1 = 2/3.
    assert f1_score("Paris, France", ["Paris"]) == pytest.approx(2 / 3)
    # Best over golds: vs "new york city" 2 common of 2 and 3 -> P 1, R 2/3 -> 0.8.
    assert f1_score("New York", ["Boston", "New York City"]) == pytest.approx(0.8)
    assert f1_score("the", ["a"]) == 0.0  # both normalise to nothing
    assert extract_answer("<answer>x</answer> then <answer> Lima </answer>") == "Lima"
    assert extract_answer("no tags") is None


def test_a_passage_contains_an_answer_as_whole_normalised_words():
    passage = "Doc 1 (Title: Choude Ra) Choude Ra is an architect born in New-York in 1906."
    assert contains_answer(passage, ["newyork"])  # normalised: the hyphen goes
    assert contains_answer(passage, ["Lima", "the 1906"])  # any gold; the article goes
    assert not contains_answer(passage, ["York City"])  # the whole answer, not a part
    assert not contains_answer(passage, ["Ra is an arch"])  # whole words only
    assert not contains_answer(passage, ["", "the"])  # nothing left after normalising


@pytest.fixture(scope="module")
def qa():
    return SearchQATasks()


def test_multi_hop_questions_follow_the_knowledge_base(qa):
    kb = qa.kb
    tasks = qa.tasks("train", 90, seed=2)
    assert {t.kind for t in tasks} == {"1-hop", "2-hop", "3-hop"}
    docs = {d["id"]: d["text"] for d in qa.documents()}
    for task in tasks:
        hops = task.data["hops"]
        assert len(hops) == int(task.kind[0])
        # Each hop's document states the fact, and the fact names the next hop's entity.
        for hop, nxt in zip(hops, hops[1:] + [None]):
            assert hop["value"] in docs[hop["doc_id"]] and hop["entity"] in hop["query"]
            if nxt is not None:
                assert nxt["entity"] == hop["value"]
        assert hops[-1]["value"] == task.answer == task.data["answers"][0]
        assert kb.entities[hops[0]["doc_id"]].name in task.data["question"]


def test_expert_answers_score_one_on_every_question(qa):
    for split in ("train", "valid", "test"):
        for task in qa.tasks(split, 100, seed=6):
            oracle = qa.oracle(task)
            final = [oracle.act(None) for _ in qa.oracle_steps(task)][-1]
            assert qa.reward(task, final) == 1.0, task


def test_splits_are_disjoint_and_seeded(qa):
    questions = {s: {t.data["question"] for t in qa.tasks(s, 200, seed=1)} for s in ("train", "test")}
    assert not questions["train"] & questions["test"]
    assert [t.data for t in qa.tasks("valid", 20, 5)] == [t.data for t in qa.tasks("valid", 20, 5)]
    assert build_kb(3).documents() != build_kb(4).documents()


def test_reward_and_expert_script(qa):
    task = qa.tasks("test", 3, seed=0)[2]
    steps = qa.oracle_steps(task)
    assert [s.kind for s in steps] == ["search"] * 3 + ["answer"]
    assert steps[0].text.startswith(task.data["hops"][0]["entity"])
    oracle = qa.oracle(task)
    texts = [oracle.act(None) for _ in steps]
    assert texts[0] == f"<search>{steps[0].text}</search>"
    assert qa.reward(task, texts[-1]) == 1.0
    assert qa.reward(task, "I think it is <answer>nobody</answer>") == 0.0
    assert qa.reward(task, task.answer) == 0.0  # an answer outside the tags does not count
    em = SearchQATasks(metric="em")
    assert em.reward(task, f"<answer>The {task.answer}</answer>") == 1.0
    assert tag_render(ScriptStep("code", "print(1)")) == "<python>print(1)</python>"
    with pytest.raises(ValueError, match="env.options.hops"):
        SearchQATasks(hops=[5])


def test_fact_passages_need_the_relation_word_and_vague_demos_name_only_the_entity():
    from turnwise.envs.search_qa.questions import QUERY_WORDS
    from turnwise.envs.search_qa.suite import SearchQASuite

    kb = build_kb(0)
    facts = {d["id"]: d for d in kb.fact_documents()}
    assert len(facts) == sum(len(e.facts) for e in kb.entities.values())
    person = kb.entities["person0"]
    born = facts["person0/birth_year"]
    assert born == {"id": "person0/birth_year", "title": person.name,
                    "text": f"{person.name} was born in the year {person.facts['birth_year']}."}
    for doc_id, doc in facts.items():  # each passage holds its relation's query word
        assert QUERY_WORDS[doc_id.split("/")[1]] in doc["text"].lower(), doc

    suite = SearchQASuite(passages="fact", vague_demos=0.5, hops=[1], top_k=1)
    tasks = suite.tasks("valid", 60, seed=0)
    vague = [suite.qa._vague(t) for t in tasks]
    assert 0 < sum(vague) < len(tasks)  # about half, chosen per task
    assert vague == [suite.qa._vague(t) for t in suite.tasks("valid", 60, seed=0)]
    for task, is_vague in zip(tasks, vague):
        hop = task.data["hops"][0]
        search = suite.oracle_steps(task)[0].text
        assert search == (hop["entity"] if is_vague else hop["query"])
        # A query naming the relation finds the fact's own passage first.
        assert contains_answer(suite.search(hop["query"]), task.data["answers"]), hop
    # A bare name finds one of the entity's passages: often not the one asked for.
    missed = sum(not contains_answer(suite.search(t.data["hops"][0]["entity"]), t.data["answers"])
                 for t in tasks)
    assert missed > len(tasks) // 3
    assert SearchQATasks(vague_demos=0.0)._vague(tasks[0]) is False
    with pytest.raises(ValueError, match="env.options.passages='page'"):
        SearchQATasks(passages="page")
    for bad in (1.5, "0.5"):
        with pytest.raises(ValueError, match=r"env.options.vague_demos=.*: allowed is a number in"):
            SearchQATasks(vague_demos=bad)
    with pytest.raises(ValueError, match="synthetic' only"):
        SearchQATasks(source="files", passages="fact")


def test_loading_nq_hotpotqa_and_search_r1_files(tmp_path):
    nq = tmp_path / "nq.jsonl"
    nq.write_text("\n".join(json.dumps(r) for r in [
        {"id": "q1", "question": "who wrote hamlet", "golden_answers": ["Shakespeare", "William Shakespeare"]},
        {"id": "q2", "question": "capital of peru", "golden_answers": ["Lima"]}]))
    hotpot = tmp_path / "hotpot.json"
    hotpot.write_text(json.dumps([{
        "_id": "h1", "question": "Which city hosts the Lumo tower?", "answer": "Vell", "type": "bridge",
        "context": [["Lumo tower", ["The Lumo tower stands in Vell.", " It is tall."]],
                    ["Vell", ["Vell is a city."]]]}]))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "0", "contents": '"Hamlet"\nHamlet is a play by Shakespeare.'}))
    qa = SearchQATasks(source="files", data_files={"train": str(nq), "test": str(hotpot)},
                       corpus_file=str(corpus), cache_dir=str(tmp_path / "cache"))
    assert qa.documents() == [{"id": "0", "title": "Hamlet", "text": "Hamlet is a play by Shakespeare."}]
    train = qa.tasks("train", 3, seed=0)
    assert {t.data["question"] for t in train} == {"who wrote hamlet", "capital of peru"}
    task = next(t for t in train if t.data["row_id"] == "q1")
    assert task.answer == "Shakespeare" and qa.reward(task, "<answer>william shakespeare</answer>") == 1.0
    assert [s.kind for s in qa.oracle_steps(task)] == ["search", "answer"]
    test = qa.tasks("test", 1, seed=0)[0]
    assert test.kind == "bridge" and test.answer == "Vell"
    contexts = SearchQATasks(source="files", data_files={"test": str(hotpot)}, cache_dir=str(tmp_path / "c2"))
    assert contexts.documents()[0] == {"id": "Lumo tower", "title": "Lumo tower",
                                       "text": "The Lumo tower stands in Vell. It is tall."}
    with pytest.raises(ValueError, match="data_files has"):
        qa.tasks("valid", 1, 0)


def test_loading_search_r1_parquet(tmp_path):
    import pandas as pd

    path = tmp_path / "test.parquet"
    pd.DataFrame({"question": ["who?"], "reward_model": [{"ground_truth": {"target": ["Ada", "Ada L."]}}]}
                 ).to_parquet(path)
    doc = tmp_path / "docs.jsonl"
    doc.write_text(json.dumps({"id": "d", "title": "Ada", "text": "Ada wrote programs."}))
    qa = SearchQATasks(source="files", data_files={"test": str(path)}, corpus_file=str(doc),
                       cache_dir=str(tmp_path / "cache"))
    assert qa.tasks("test", 1, 0)[0].data["answers"] == ["Ada", "Ada L."]
    missing = tmp_path / "bad.jsonl"
    missing.write_text(json.dumps({"question": "q"}))
    with pytest.raises(ValueError, match="no gold answer"):
        SearchQATasks(source="files", data_files={"test": str(missing)}, corpus_file=str(doc),
                      cache_dir=str(tmp_path / "c3"))
