"""The `search_qa` suite: answer questions by searching a local corpus with BM25.

Search-R1 / ARPO format by default: the agent writes `<search>query</search>`, the top passages
come back inside `<information>...</information>`, and `<answer>...</answer>` ends the episode.
`parser: hermes` uses JSON tool calls instead (the search tool's schema goes to the chat
template). Reward: F1 of the answer against the gold answers (`metric: em` for exact match);
success: exact match, whatever the metric; the last step's `info["score"]`: F1, and its
`info["evidence_found"]`: whether a passage the episode retrieved held a gold answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ...tools.search import BM25Index, Document, bm25_search_tool
from ..base import Task, register_suite
from ..scripted import ScriptStep
from ..tool_suite import ToolSuite
from . import SearchQATasks
from .metrics import contains_answer, exact_match, f1_score

INSTRUCTIONS = (
    "Answer the question using a collection of documents. Search as often as you need: a "
    "question may take several searches, each building on what the last one found. The answer "
    "is a short name, place, year or other phrase."
)


@register_suite("search_qa")
class SearchQASuite(ToolSuite):
    """Single- and multi-hop QA with a BM25 search tool over the suite's documents.

    The index is built once, when the suite is made, and shared by every episode. Success is
    exact match (SQuAD normalisation) while the reward is `metric` (F1 by default); the final
    step reports F1 as `info["score"]`. The gold answer is `Task.answer` (for IGPO).

    Options: `parser` (xml | hermes), `metric` (f1 | em), `anchor` (observation | state),
    `think`, `top_k`, `snippet_chars`, `max_calls_per_episode`, `executor` (Executor options),
    and the task source's `source`, `kb_seed`, `kb_size`, `hops`, `passages`, `vague_demos`,
    `data_files`, `corpus_file`, `cache_dir`, `skip_bad_rows` (see `SearchQATasks`).
    """

    name = "search_qa"

    def __init__(self, *, parser: str = "xml", metric: str = "f1", anchor: str = "observation",
                 think: bool = True, top_k: int = 3, snippet_chars: int = 300,
                 max_calls_per_episode: int | None = 8, executor: dict[str, Any] | None = None,
                 source: str = "synthetic", kb_seed: int = 0, kb_size: dict[str, int] | None = None,
                 hops: Sequence[int] = (1, 2, 3), data_files: dict[str, str] | None = None,
                 corpus_file: str | None = None, cache_dir: str | None = None,
                 skip_bad_rows: bool = False, passages: str = "entity",
                 vague_demos: float = 0.0) -> None:
        self.qa = SearchQATasks(source=source, kb_seed=kb_seed, kb_size=kb_size, hops=hops,
                                metric=metric, data_files=data_files, corpus_file=corpus_file,
                                cache_dir=cache_dir, skip_bad_rows=skip_bad_rows,
                                passages=passages, vague_demos=vague_demos)
        self.index = BM25Index([Document(id=d["id"], title=d["title"], text=d["text"])
                                for d in self.qa.documents()])
        try:
            self.search = bm25_search_tool(self.index, top_k=top_k, snippet_chars=snippet_chars,
                                           name="search")
        except ValueError as exc:
            raise ValueError(f"env.options: {exc}") from None
        super().__init__([self.search], reward=_f1 if metric == "f1" else _em,
                         success=_exact, score=_f1, evidence=_retrieved,
                         instructions=INSTRUCTIONS, parser=parser, anchor=anchor, think=think,
                         max_calls_per_episode=max_calls_per_episode, executor=executor)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` questions of `split` (synthetic: train / valid / test), fixed by `seed`."""
        return self.qa.tasks(split, count, seed)

    def oracle_steps(self, task: Task) -> list[ScriptStep]:
        """One search per hop, naming the hop's entity, then the gold answer."""
        return self.qa.oracle_steps(task)

    def corpus(self) -> Iterable[str]:
        """Documents, questions, the prompts of both formats, the expert's responses, the
        passages its searches retrieve and its answers."""
        yield from self.qa.corpus()
        steps = [step for split in self.qa.splits for task in self.qa.tasks(split, 100, 7)
                 for step in self.qa.oracle_steps(task)]
        yield from self.format_texts(steps)
        # Passages repeat the documents' words; a sample of searches shows their layout.
        for step in [s for s in steps if s.kind == "search"][:150]:
            yield f"<information>{self.search(step.text)}</information>"


def _f1(answer: str, task: Task) -> float:
    return f1_score(answer, task.data["answers"])


def _em(answer: str, task: Task) -> float:
    return exact_match(answer, task.data["answers"])


def _exact(answer: str, task: Task) -> bool:
    return _em(answer, task) == 1.0


def _retrieved(results: Sequence[str], task: Task) -> bool:
    return any(contains_answer(text, task.data["answers"]) for text in results)
