"""`search_qa`: single- and multi-hop questions answered by searching a local corpus.

This package holds everything but the environment itself: tasks (from the synthetic knowledge
base, or from local NQ/HotpotQA-style files), the documents a search tool should index, the
reward (F1 or exact match after SQuAD normalisation, on the last `<answer>`), and the expert's
script (one search naming each hop's entity, then the answer). A suite wires these to a
`ToolEnv` with a search tool over `documents()`.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from ..base import Task
from ..scripted import Render, ScriptedOracle, ScriptStep, check_share, tag_render, task_draw
from .kb import build_kb
from .loader import load_corpus, load_questions
from .metrics import contains_answer, exact_match, extract_answer, f1_score, normalize_answer
from .questions import SPLITS, make_questions

METRICS = ("f1", "em")
PASSAGES = ("entity", "fact")


class SearchQATasks:
    """Tasks, documents, reward and expert script for search-based QA.

    `source="synthetic"` generates questions over a knowledge base built from `kb_seed`;
    `source="files"` reads `data_files` (split name -> local file) and, optionally, a
    `corpus_file`; without one, HotpotQA-style context paragraphs form the corpus. A bad row
    stops the load naming its file and line, unless `skip_bad_rows` (then `skipped` lists them).

    Synthetic only: `passages="fact"` indexes one short passage per fact instead of one document
    per entity, so a search must name the relation as well as the entity; `vague_demos` is the
    fraction of tasks (chosen by a hash of the task id) whose expert script searches the bare
    entity name, a cold start whose searches RL has to improve.
    """

    def __init__(self, *, source: str = "synthetic", kb_seed: int = 0,
                 kb_size: dict[str, int] | None = None, hops: Sequence[int] = (1, 2, 3),
                 metric: str = "f1", data_files: dict[str, str] | None = None,
                 corpus_file: str | None = None, cache_dir: str | None = None,
                 skip_bad_rows: bool = False, passages: str = "entity",
                 vague_demos: float = 0.0) -> None:
        if metric not in METRICS:
            raise ValueError(f"env.options.metric={metric!r}: allowed are {list(METRICS)}")
        if source not in ("synthetic", "files"):
            raise ValueError(f"env.options.source={source!r}: allowed are 'synthetic', 'files'")
        if passages not in PASSAGES:
            raise ValueError(f"env.options.passages={passages!r}: allowed are {list(PASSAGES)}")
        vague_demos = check_share("env.options.vague_demos", vague_demos)
        if source != "synthetic" and (passages != "entity" or vague_demos):
            raise ValueError("env.options.passages and vague_demos apply to source='synthetic' "
                             f"only (source={source!r})")
        self.source, self.metric, self.hops = source, metric, tuple(hops)
        self.vague_demos = vague_demos
        self._questions: dict[str, list[dict[str, Any]]] = {}
        self.skipped: list[str] = []  # bad rows left out (skip_bad_rows): "file:line: problem"
        if source == "synthetic":
            self.kb = build_kb(kb_seed, **(kb_size or {}))
            self._documents = (self.kb.documents() if passages == "entity"
                               else self.kb.fact_documents())
            make_questions(self.kb, "train", 1, 0, self.hops)  # validate `hops` now
            return
        if not data_files:
            raise ValueError("env.options.data_files is required with source='files' "
                             "(a mapping of split name to a local .jsonl/.json/.parquet file)")
        self._questions = {
            split: load_questions(path, cache_dir=cache_dir,
                                  skipped=self.skipped if skip_bad_rows else None)
            for split, path in data_files.items()}
        if self.skipped:
            print(f"warning: search_qa skipped {len(self.skipped)} bad row(s) "
                  f"(env.options.skip_bad_rows); first: {self.skipped[0]}", file=sys.stderr)
        if corpus_file:
            self._documents = load_corpus(corpus_file, cache_dir=cache_dir)
        else:
            unique = {d["title"]: d for qs in self._questions.values() for q in qs
                      for d in q["documents"]}
            self._documents = list(unique.values())
        if not self._documents:
            raise ValueError("search_qa: no documents to search; give env.options.corpus_file "
                             "or question files with HotpotQA-style 'context'")

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` questions of `split`, determined by `seed`."""
        if self.source == "synthetic":
            return make_questions(self.kb, split, count, seed, self.hops)
        if split not in self._questions:
            raise ValueError(f"search_qa split={split!r}: data_files has {sorted(self._questions)}")
        rows = self._questions[split]
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        return [Task(id=f"search_qa/{split}/{seed}/{i}", kind=rows[j]["type"],
                     answer=rows[j]["answers"][0],
                     data={"question": rows[j]["question"], "answers": rows[j]["answers"],
                           "source": "files", "row_id": rows[j]["id"]})
                for i, j in enumerate(order[k % len(order)] for k in range(count))]

    @property
    def splits(self) -> tuple[str, ...]:
        """The split names `tasks` accepts."""
        return SPLITS if self.source == "synthetic" else tuple(self._questions)

    def documents(self) -> list[dict[str, str]]:
        """The corpus to index for the search tool: dicts with `id`, `title`, `text`."""
        return self._documents

    def prompt(self, task: Task) -> str:
        """The question as the agent first sees it."""
        return task.data["question"]

    def reward(self, task: Task, response: str) -> float:
        """F1 (or EM) of the last `<answer>` in `response` against the gold answers; 0 if none."""
        answer = extract_answer(response)
        if answer is None:
            return 0.0
        golds = task.data["answers"]
        return f1_score(answer, golds) if self.metric == "f1" else exact_match(answer, golds)

    def oracle_steps(self, task: Task) -> list[ScriptStep]:
        """An expert's moves: one search per hop (naming the hop's entity), then the answer."""
        if task.data["source"] == "synthetic":
            key = "entity" if self._vague(task) else "query"
            steps = [ScriptStep("search", hop[key]) for hop in task.data["hops"]]
        else:
            steps = [ScriptStep("search", task.data["question"])]
        return steps + [ScriptStep("answer", task.data["answers"][0])]

    def _vague(self, task: Task) -> bool:
        return task_draw(task.id, "vague:") < self.vague_demos

    def oracle(self, task: Task, render: Render = tag_render) -> ScriptedOracle:
        return ScriptedOracle(self.oracle_steps(task), render)

    def corpus(self) -> Iterable[str]:
        """Text for a tiny tokenizer: documents, questions and the expert's responses."""
        for doc in self._documents[:2000]:
            yield f"{doc['title']}\n{doc['text']}"
        for split in self.splits:
            for task in self.tasks(split, 100, 7):
                yield task.data["question"]
                yield "\n".join(tag_render(step) for step in self.oracle_steps(task))


__all__ = ["METRICS", "PASSAGES", "SPLITS", "SearchQATasks", "contains_answer", "exact_match",
           "extract_answer", "f1_score", "normalize_answer"]
