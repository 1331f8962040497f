"""IGPO's scoring pass: the policy's mean log-prob of the gold answer before each turn.

A probe is the answer written as the model would write it at that point: the assistant turn is
already open (every context ends with the generation prompt), then a fixed lead-in, then the
answer inside the recipe's answer tags. Only the answer's own tokens are averaged.

Shared prefixes are computed once. A `full_trajectory` episode of T turns is one packed row: the
context before its last turn, followed by T copies of the probe. A block attention mask lets
copy t see only the first len(context_t) tokens and itself, and its position ids continue from
len(context_t), so each copy is scored exactly as if appended to its own prefix (the tests
compare with one forward per prefix). `per_step` prompts share nothing: one row per turn.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..rollouts.trajectory import Trajectory
from .config import AnswerProbeConfig

_DEFAULT = AnswerProbeConfig()
LEAD_IN, OPEN_TAG, CLOSE_TAG = _DEFAULT.lead_in, _DEFAULT.open_tag, _DEFAULT.close_tag


@dataclass(frozen=True)
class Probe:
    """Token ids of the probe and the [start, end) span of the answer inside them."""

    ids: list[int]
    start: int
    end: int


def make_probe(tokenizer, answer: str, *, lead_in: str = LEAD_IN, open_tag: str = OPEN_TAG,
               close_tag: str = CLOSE_TAG) -> Probe:
    """Tokenise lead-in + tags + answer as one text; find the answer's tokens by char offsets."""
    if not answer or not answer.strip():
        raise ValueError("igpo: the gold answer is empty; every task needs Task.answer")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("igpo: the scoring pass needs a fast tokenizer (offset mappings)")
    text = f"{lead_in}{open_tag}{answer}{close_tag}"
    begin, finish = len(lead_in) + len(open_tag), len(lead_in) + len(open_tag) + len(answer)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    inside = [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if a < finish and b > begin]
    if not inside:
        raise ValueError(f"igpo: the answer {answer!r} maps to no token of the probe")
    return Probe(list(encoded["input_ids"]), inside[0], inside[-1] + 1)


@dataclass
class _Row:
    base: list[int]  # the shared context
    cuts: list[int]  # probe copy k is scored after base[:cuts[k]]
    probe: Probe
    targets: list[tuple[int, int]]  # (trajectory index, slot) of each copy; slot -1 = the prompt


def _rows(trajectories: Sequence[Trajectory], probes: Sequence[Probe]) -> list[_Row]:
    rows = []
    for i, (traj, probe) in enumerate(zip(trajectories, probes)):
        count = len(traj.turns)  # contexts before turns 0..T-1: the bare prompt, then after each turn
        slots = list(range(-1, count - 1))
        if traj.mode == "full_trajectory":
            base = traj.context_ids(count - 1)
            cuts = [len(traj.context_ids(0))]
            for turn in traj.turns[: count - 1]:
                cuts.append(cuts[-1] + len(turn.response_ids) + len(turn.observation_ids))
            rows.append(_Row(base, cuts, probe, [(i, s) for s in slots]))
        else:
            for t, slot in enumerate(slots):
                context = traj.context_ids(t)
                rows.append(_Row(context, [len(context)], probe, [(i, slot)]))
    return rows


def _pack(rows: Sequence[_Row], dtype: torch.dtype, pad_id: int):
    """Input ids, positions, additive 4-D mask, and per copy the (row, predictor, target) index
    triples of its answer tokens."""
    lengths = [len(r.base) + len(r.cuts) * len(r.probe.ids) for r in rows]
    width = max(lengths)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    allowed = torch.zeros((len(rows), width, width), dtype=torch.bool)
    picks: list[tuple[int, list[int], list[int]]] = []
    for b, row in enumerate(rows):
        n, m = len(row.base), len(row.probe.ids)
        ids[b, :n] = torch.tensor(row.base, dtype=torch.long)
        positions[b, :n] = torch.arange(n)
        allowed[b, :n, :n] = torch.ones((n, n), dtype=torch.bool).tril()
        causal = torch.ones((m, m), dtype=torch.bool).tril()
        for k, cut in enumerate(row.cuts):
            s = n + k * m
            ids[b, s:s + m] = torch.tensor(row.probe.ids, dtype=torch.long)
            positions[b, s:s + m] = torch.arange(cut, cut + m)
            allowed[b, s:s + m, :cut] = True
            allowed[b, s:s + m, s:s + m] = causal
            # Token j of the copy is predicted at copy position j-1 (j = 0: the last context token).
            span = range(row.probe.start, row.probe.end)
            predictors = [s + j - 1 if j > 0 else cut - 1 for j in span]
            picks.append((b, predictors, [row.probe.ids[j] for j in span]))
        pad = torch.arange(lengths[b], width)
        allowed[b, pad, pad] = True  # padding attends to itself only: no empty softmax rows
        positions[b, lengths[b]:] = 0
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    return ids, positions, mask.unsqueeze(1), picks


@torch.no_grad()
def score_answer_logprobs(model: torch.nn.Module, tokenizer, trajectories: Sequence[Trajectory], *,
                          lead_in: str = LEAD_IN, open_tag: str = OPEN_TAG,
                          close_tag: str = CLOSE_TAG, temperature: float = 1.0,
                          token_budget: int = _DEFAULT.token_budget) -> dict[str, float]:
    """Fill `answer_logprob_prompt` and `answer_logprob` of every turn but the last, in place.

    The gold answer is `traj.info["answer"]`. `token_budget` bounds rows x packed length of one
    forward. Returns timing and size metrics for the run log, and over solved episodes the mean
    answer log-prob before their last turn (`igpo/probe_logprob_solved`), which is far below 0
    when the probe does not match how the policy writes answers.
    """
    started = time.perf_counter()
    probes = []
    for traj in trajectories:
        answer = traj.info.get("answer")
        if answer is None:
            raise ValueError(f"igpo: trajectory {traj.traj_id} (task {traj.task_id!r}) has no gold "
                             f"answer in info['answer']; IGPO needs tasks with Task.answer")
        probes.append(make_probe(tokenizer, str(answer), lead_in=lead_in, open_tag=open_tag,
                                 close_tag=close_tag))
    rows = sorted(_rows(trajectories, probes), key=lambda r: len(r.base) + len(r.cuts) * len(r.probe.ids))
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    packed_tokens = 0
    forwards = 0
    start = 0
    while start < len(rows):
        stop = start + 1
        while stop < len(rows) and (stop - start + 1) * _length(rows[stop]) <= token_budget:
            stop += 1
        batch = rows[start:stop]
        ids, positions, mask, picks = _pack(batch, dtype, pad_id)
        packed_tokens += ids.numel()
        forwards += 1
        keep = sorted({p for _, predictors, _ in picks for p in predictors})
        column = {p: c for c, p in enumerate(keep)}
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                       position_ids=positions.to(device), use_cache=False,
                       logits_to_keep=torch.tensor(keep, device=device)).logits.float()
        logp = torch.log_softmax(logits / temperature, dim=-1)
        copies = iter(picks)
        for row in batch:
            for target in row.targets:
                b, predictors, tokens = next(copies)
                cols = torch.tensor([column[p] for p in predictors], device=device)
                value = logp[b, cols, torch.tensor(tokens, device=device)].mean().item()
                _store(trajectories[target[0]], target[1], value)
        start = stop
    if was_training:
        model.train()
    metrics = {"igpo/score_seconds": time.perf_counter() - started,
               "igpo/score_forwards": float(forwards), "igpo/score_tokens": float(packed_tokens),
               "igpo/probes": float(sum(len(r.cuts) for r in rows))}
    solved = [_last_probe(t) for t in trajectories if t.success]
    if solved:
        metrics["igpo/probe_logprob_solved"] = sum(solved) / len(solved)
    return metrics


def _last_probe(traj: Trajectory) -> float:
    """The answer's log-prob right before the answer turn: the probe's read of what the episode
    then wrote. On solved episodes it should be near 0; far below, the probe does not read like
    the policy's own answers (check `credit.answer_probe`)."""
    return traj.answer_logprob_prompt if len(traj.turns) < 2 else traj.turns[-2].answer_logprob


def _length(row: _Row) -> int:
    return len(row.base) + len(row.cuts) * len(row.probe.ids)


def _store(traj: Trajectory, slot: int, value: float) -> None:
    if slot < 0:
        traj.answer_logprob_prompt = value
    else:
        traj.turns[slot].answer_logprob = value
