"""The benchmarks' core functions at toy sizes, so that they cannot rot between benchmark runs."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import common, memory, prefix_sharing, results, run_all, trl_comparison
from benchmarks.engine_overhead import engine_run, hf_generate_run, make_prompts

ROOT = Path(__file__).resolve().parents[1]


def test_interleaved_takes_turns_and_medians_are_medians():
    calls = []
    times = common.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 3
    assert [len(v) for v in times.values()] == [3, 3]
    assert common.medians({"x": [3.0, 1.0, 2.0], "y": [5.0, 4.0]}) == {"x": 2.0, "y": 4.5}


def test_prefix_sharing_counts_what_each_side_computes():
    import torch
    from turnwise.rollouts.batch import RolloutBatch

    rows = [[1, 2, 3, 4, 5, 6, 0], [1, 2, 3, 4, 7, 8, 9], [5, 5, 5, 5, 0, 0, 0]]
    ids = torch.tensor(rows)
    mask = (ids != 0).long()
    lengths = mask.sum(-1, keepdim=True)
    positions = torch.arange(7)
    loss = ((positions >= lengths - 2) & mask.bool()).float()  # the last two tokens of each row
    zeros = torch.zeros(ids.shape)
    batch = RolloutBatch(ids, mask, loss, zeros, zeros, torch.full(ids.shape, -1),
                         torch.arange(3), torch.tensor([0, 0, 1]), torch.zeros(3, dtype=torch.long))
    # Plain: 3 rows x 7. Shared: rows 0-1 share 3 tokens (row 0 is scored from token 4), row 2
    # alone splits after 1; prefix pass 2 groups x 3, suffix pass 3 rows x max(3, 4, 3).
    assert prefix_sharing.computed_tokens(batch, 1000, 1) == (21, 6 + 12)


def test_engine_and_batched_generate_do_the_same_work(tiny_path, tokenizer, tiny_model):
    from turnwise.agent.engines import make_engine

    prompts = make_prompts(tokenizer, 3, seed=1)
    assert len({len(p) for p in prompts}) > 1  # varied lengths: padding is exercised
    engine = make_engine("hf", tiny_model, tokenizer, max_batch=3)
    try:
        assert engine_run(engine, prompts, 4) == 12
    finally:
        asyncio.run(engine.close())
    pad = tokenizer.pad_token_id
    assert hf_generate_run(tiny_model, prompts, 4, pad, logprobs=True) == 12
    assert hf_generate_run(tiny_model, prompts, 4, pad, logprobs=False) == 12


def test_trl_comparison_reward_and_turnwise_iteration(tiny_path):
    # 2 of the 4 words name house objects ("mug", "table."); "a" and "the" do not.
    assert trl_comparison.reward("a mug the table.") == pytest.approx(0.5)
    assert trl_comparison.reward("") == 0.0
    # turnwise's tasks carry exactly the user messages TRL's dataset gets.
    tasks = trl_comparison.PromptSuite().tasks("train", 3, seed=7)
    assert [t.data["user"] for t in tasks] == [m[1]["content"]
                                               for m in trl_comparison.prompt_messages(3, 7)]
    args = argparse.Namespace(prompts=1, group=2, tokens=4, lr=1e-6)
    ours = trl_comparison.Turnwise(tiny_path, args)
    try:
        seconds, trained = ours.step()
    finally:
        asyncio.run(ours.engine.close())
    assert trained == 1 * 2 * 4 and seconds > 0
    assert set(ours.phases) == {"generation", "credit", "update", "sync"}


@pytest.mark.skipif(importlib.util.find_spec("trl") is None,
                    reason="TRL is in the `bench` extra (make bench installs it)")
def test_trl_round_generates_the_requested_length(tiny_path):
    args = argparse.Namespace(prompts=1, group=2, tokens=4, lr=1e-6, steps=1)
    seconds, logs = trl_comparison.trl_round(tiny_path, args, seed=0)
    assert len(seconds) == 1
    assert {log["completions/mean_length"] for log in logs} == {4.0}


def test_memory_episodes_have_the_described_layout_and_worker_reports(tiny_path, tmp_path):
    from turnwise.rollouts import build_batch

    full = build_batch(memory.episodes("full_trajectory", 2, 3, 128, 500))
    # 128 prompt + 3 x (64 response + 64 observation) - the last observation = 448 tokens.
    assert full.num_rows == 2 and full.input_ids.shape[1] == 448
    assert full.num_tokens() == 2 * 3 * 64
    steps = build_batch(memory.episodes("per_step", 2, 3, 128, 500))
    # Turn t's window: 128 task tokens + 128 per earlier turn (at most 2) + the response.
    assert steps.num_rows == 6 and steps.row_lengths().tolist() == [192, 320, 448] * 2
    out = tmp_path / "m.json"
    memory.worker(argparse.Namespace(model=tiny_path, mode="per_step", episodes=2, turns_one=2,
                                     prompt_one=128, micro_tokens=4096, threads=1, out=str(out)))
    figures = json.loads(out.read_text())
    assert figures["trained_tokens"] == 2 * 2 * 64 and figures["update_peak_mib"] >= 0


def test_results_summary_and_scaling_note_quote_the_figures(tmp_path):
    records = [
        {"name": "trl_comparison", "command": "python -m benchmarks.trl_comparison",
         "seconds": 10.0, "table": "turnwise 1.0", "figures": {
             "trl/turnwise": 1.8, "tokens_per_s": {"turnwise": 900.0, "trl": 500.0},
             "params": 880_000, "prompts": 8, "group": 8, "tokens_per_completion": 32,
             "turnwise_phases": {"generation": 0.6, "credit": 0.01, "update": 0.39, "sync": 0.0}}},
        {"name": "engine_overhead_vllm", "command": "x", "skipped": "no .venv-vllm here"},
    ]
    rows = results.summary_rows(records)
    assert ("GRPO iteration: TRL GRPOTrainer / turnwise (time per iteration)", "1.80x",
            ">= 1.5") in rows
    assert "generation 0.600 s (60%)" in results.scaling_note(records)
    path = tmp_path / "RESULTS.md"
    results.write_results(path, records, {"cpu": "test cpu", "cores": 2, "torch": "2.13.0"},
                          command="python -m benchmarks.run_all", total_s=60.0, quick=False)
    text = path.read_text()
    assert "test cpu, 2 cores" in text and "| 1.80x | >= 1.5 |" in text
    assert "Skipped: no .venv-vllm here." in text and "GPU (bf16) figures were not measured" in text


def test_run_all_names_modules_that_exist():
    for bench in run_all.BENCHES:
        assert importlib.util.find_spec(f"benchmarks.{bench.module}") is not None, bench.module
    assert run_all.WITH_JSON <= {b.name for b in run_all.BENCHES}


def test_run_all_only_replaces_just_the_rerun_records(tmp_path, monkeypatch):
    calls = []

    def fake_run(bench, *, quick, folder):
        calls.append(bench.name)
        return {"name": bench.name, "command": f"bench {bench.name}", "seconds": 1.0,
                "table": f"{bench.name} table {len(calls)}", "machine": run_all.machine()}

    monkeypatch.setattr(run_all, "run_one", fake_run)
    monkeypatch.setattr(run_all, "machine", lambda: {"cpu": "test cpu", "cores": 2})
    out = tmp_path / "RESULTS.md"
    monkeypatch.setattr("sys.argv", ["run_all", "--out", str(out)])
    run_all.main()
    first = out.read_text()
    assert "comes from this one run" in first and "memory table" in first
    monkeypatch.setattr("sys.argv", ["run_all", "--out", str(out), "--only", "memory"])
    monkeypatch.setattr(run_all, "machine", lambda: {"cpu": "other cpu", "cores": 4})
    run_all.main()
    merged = out.read_text()
    assert "- CPU: test cpu, 2 cores" in merged  # the full run's machine heads the report...
    assert ", rerun on " in merged and " on other cpu, 4 cores" in merged  # ...a rerun names its own
    n = len(run_all.BENCHES)
    assert calls[-1] == "memory" and len(calls) == n + 1
    assert f"memory table {n + 1}" in merged and f"memory table {calls.index('memory') + 1}" not in merged
    assert "rollout_scheduling table 1" in merged  # kept from the full run
    assert "except memory, rerun later with `--only`" in merged and ", rerun on " in merged
    saved = json.loads(out.with_suffix(".json").read_text())
    assert [r["name"] for r in saved["records"]] == [b.name for b in run_all.BENCHES]


def test_gateway_overhead_plays_the_same_conversations_both_ways(tokenizer):
    from turnwise.agent.chat import ChatFormatter

    from benchmarks import gateway_overhead as gateway

    engine = gateway.ScriptedEngine(tokenizer)
    formatter = ChatFormatter(tokenizer, tools=[gateway.TOOL])
    args = argparse.Namespace(conversations=2, turns=3, tokens=8, repeats=1)
    figures = asyncio.run(gateway.measure(engine, tokenizer, formatter, args, concurrency=2))
    assert set(figures) == {f"{kind} {name}" for kind in ("p50", "mean", "wall", "cpu")
                            for name in gateway.CONTENDERS}
    row = gateway.row("scripted", 2, 6, figures)
    assert row["overhead_ms_p50"] == pytest.approx(
        (figures["p50 gateway (raw HTTP)"] - figures["p50 direct"]) * 1000)
    assert row["gateway/direct"] > 0


def test_headline_ratios_read_each_benchmarks_figures():
    from benchmarks.ratios import headline_ratios

    rows = [{"mode": "full_trajectory", "turns": 4, "prompt": 128, "update_peak_mib": 300.0},
            {"mode": "per_step", "turns": 4, "prompt": 128, "update_peak_mib": 1200.0},
            {"mode": "full_trajectory", "turns": 1, "prompt": 512, "update_peak_mib": 9.0}]
    assert headline_ratios({"name": "memory", "figures": {"rows": rows}}) == {
        "4 turns: per_step / full_trajectory (update peak MiB)": 4.0}
    assert headline_ratios({"name": "sandbox_latency", "table": "bwrap ... ratio 193.8x"}) == {}
    own = {"name": "gateway_overhead", "figures": {"ratios": {"gateway / direct": 1.5}}}
    assert headline_ratios(own) == {"gateway / direct": 1.5}


def test_sandbox_latency_writes_its_ratios(tmp_path):
    out = tmp_path / "sandbox.json"
    subprocess.run([sys.executable, "-m", "benchmarks.sandbox_latency", "--repeats", "2",
                    "--json", str(out)], cwd=ROOT, check=True, capture_output=True)
    figures = json.loads(out.read_text())
    kinds = set(figures["fresh_ms"])
    assert kinds | set(figures["unavailable"]) == {"bwrap", "unshare"}
    assert figures["ratios"] == {
        f"{kind}: fresh sandbox / session call":
            pytest.approx(figures["fresh_ms"][kind] / figures["session_ms"][kind])
        for kind in kinds}


def test_every_recorded_benchmark_has_its_headline_ratios():
    from benchmarks.ratios import RESULTS, headline_ratios

    for record in json.loads(RESULTS.read_text())["records"]:
        if "error" in record or "skipped" in record:
            continue
        assert record["ratios"], f"{record['name']}: no headline ratios"
        assert record["ratios"] == headline_ratios(record), record["name"]
        assert all(value > 0 for value in record["ratios"].values()), record["name"]


@pytest.mark.parametrize("proximal", ["recompute", "loglinear"])
def test_async_training_run_reports_its_step_figures(tiny_path, proximal):
    """One asynchronous contender at toy size: the figures the table prints, in range."""
    from benchmarks import async_training

    args = argparse.Namespace(tasks=2, group=2, iterations=2, threads=1)
    row = async_training.run(1, latency=False, args=args, proximal=proximal)
    assert set(row) == {"s_per_iteration", "engine_idle", "trainer_idle", "staleness"}
    assert row["s_per_iteration"] > 0 and 0 <= row["staleness"] <= 1
    assert 0 <= row["engine_idle"] <= 1 and 0 <= row["trainer_idle"] <= 1
