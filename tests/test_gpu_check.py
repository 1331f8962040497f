"""benchmarks/gpu_check.py: its parts, and its dry run end to end (the same code as on a GPU,
tiny models on the CPU), so the check is ready whenever a GPU is."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import pytest

from benchmarks import gpu_check, gpu_common, gpu_models, gpu_record, gpu_update
from benchmarks.prefix_sharing import computed_tokens

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("name", "entry", "tflops"), [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.0),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.0),
    ("NVIDIA H100 NVL", "H100 NVL", 835.0),
    ("NVIDIA H200", "H200 SXM", 989.0),
    ("NVIDIA GH200 480GB", "GH200", 989.0),
    ("NVIDIA A100-SXM4-80GB", "A100", 312.0),
    ("NVIDIA L40S", "L40S", 362.0),
    ("NVIDIA L4", "L4", 121.0),
    ("NVIDIA A10G", "A10G", 70.0),
])
def test_peak_table_finds_the_specific_entry_first(name, entry, tflops):
    assert gpu_models.peak_bf16(name) == (entry, tflops)


def test_a_gpu_missing_from_the_table_has_no_peak():
    assert gpu_models.peak_bf16("Tesla V100-SXM2-16GB") is None  # no bf16 tensor cores


def test_mfu_is_six_n_t_over_time_over_peak():
    # 6 x 1e9 parameters x 1000 tokens / 0.5 s = 1.2e13 FLOP/s = 12 TFLOP/s; of 100: 12%.
    assert gpu_common.mfu(10**9, 1000, 0.5, ("x", 100.0)) == pytest.approx((12.0, 0.12))
    assert gpu_common.mfu(10**9, 1000, 0.5, None) == pytest.approx((12.0, None))


def test_tiny_spec_keeps_the_architecture_and_the_record_key():
    for spec in gpu_models.REAL:
        tiny = spec.tiny()
        assert tiny.key == spec.key
        assert tiny.config["model_type"] == spec.config["model_type"]
        assert tiny.config["hidden_size"] == 64 and tiny.config["vocab_size"] == 1024
    assert gpu_models.REAL[1].tiny().config["head_dim"] == 16  # 64 / 4 heads


def test_built_model_has_the_config_vocabulary_and_the_tokenizer_ids(tokenizer):
    import torch

    spec = gpu_models.REAL[0].tiny()
    model = gpu_models.build_model(spec, tokenizer, "cpu")
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.get_input_embeddings().weight.shape == (1024, 64)
    assert model.dtype == torch.bfloat16
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    # Tied embeddings are counted once: embedding 1024 x 64 = 65536 of the total.
    assert gpu_models.parameter_count(model) == sum(
        p.numel() for n, p in model.named_parameters())


def test_grouped_batch_shares_each_groups_prefix_and_trains_on_the_rest():
    batch = gpu_update.grouped_batch(groups=2, group_size=3, prefix=5, suffix=4, vocab=50)
    ids, mask = batch.input_ids, batch.attention_mask
    assert batch.row_group.tolist() == [0, 0, 0, 1, 1, 1]
    assert (ids[:3, :5] == ids[0, :5]).all() and (ids[3:, :5] == ids[3, :5]).all()
    assert not (ids[0, :5] == ids[3, :5]).all()
    assert (batch.loss_mask[:, :5] == 0).all()
    lengths = mask.sum(-1)
    assert ((lengths >= 5 + 2) & (lengths <= 5 + 4)).all()  # 50-100% of the suffix
    assert (batch.loss_mask.sum(-1) == lengths - 5).all()
    # The update's planner finds the prefixes: it computes fewer tokens with sharing.
    plain, shared = computed_tokens(batch, 1000, 1)
    assert plain == 6 * 9 and shared < plain


def _fails(ctx, budget):
    raise RuntimeError("boom")


def _sleeps(ctx, budget):
    time.sleep(60)


def _skips(ctx, budget):
    raise gpu_common.SectionSkipped("no such library")


def test_a_failing_section_is_reported_not_raised():
    outcome = gpu_check.run_section(_fails, None, budget_s=10, left_s=100)
    assert outcome["status"] == "failed" and outcome["reason"] == "RuntimeError: boom"


def test_a_section_past_its_budget_is_stopped():
    started = time.perf_counter()
    outcome = gpu_check.run_section(_sleeps, None, budget_s=1, left_s=100)
    assert outcome["status"] == "timed out"
    assert time.perf_counter() - started < 30  # stopped long before the 60 s sleep ended


def test_skipped_sections_say_why():
    assert gpu_check.run_section(_skips, None, budget_s=10, left_s=100) == {
        "status": "skipped", "reason": "no such library", "seconds": pytest.approx(0, abs=5)}
    outcome = gpu_check.run_section(_fails, None, budget_s=100, left_s=20)
    assert outcome["status"] == "skipped" and "20 s left" in outcome["reason"]


def test_record_replaces_an_earlier_gpu_check_and_keeps_the_rest(tmp_path):
    path = tmp_path / "RESULTS.json"
    path.write_text(json.dumps({"command": "run_all", "total_s": 1.0, "date": "d", "records": [
        {"name": "memory"}, {"name": "gpu_check", "gpu": "old"}]}))
    gpu_record.write_record(path, {"name": "gpu_check", "gpu": "new", "command": "c",
                                  "seconds": 2.0, "date": "e"})
    data = json.loads(path.read_text())
    assert data["command"] == "run_all"
    assert data["records"] == [{"name": "memory"}, {"name": "gpu_check", "gpu": "new",
                                                    "command": "c", "seconds": 2.0, "date": "e"}]
    fresh = tmp_path / "new.json"
    gpu_record.write_record(fresh, {"name": "gpu_check", "command": "c", "seconds": 2.0, "date": "e"})
    assert json.loads(fresh.read_text())["total_s"] == 2.0  # run_all's layout


def test_a_partial_rerun_keeps_sections_of_the_same_gpu_only(tmp_path):
    path = tmp_path / "RESULTS.json"
    section = {"status": "ok", "rows": [["N=16", "1.00x"]], "seconds": 3.0, "date": "d1",
               "ratios": {"r": 1.0}}
    gpu_record.write_record(path, {"name": "gpu_check", "gpu": "NVIDIA H100 80GB HBM3",
                                   "dry_run": False, "command": "c", "seconds": 1.0, "date": "d1",
                                   "figures": {"sections": {"generation": section}}})
    kept = gpu_record.earlier_sections(str(path), "NVIDIA H100 80GB HBM3", False)
    assert kept == {"generation": {**section, "kept": True}}
    assert gpu_record.earlier_sections(str(path), "NVIDIA H200", False) == {}
    assert gpu_record.earlier_sections(str(path), "NVIDIA H100 80GB HBM3", True) == {}
    assert gpu_record.table("T", kept).splitlines()[2:] == [
        f"{'generation':<14}{'N=16':<52}1.00x",
        f"{'generation':<14}{'(section time, d1)':<52}3 s"]


def test_import_record_copies_the_gpu_check_record(tmp_path):
    brought = tmp_path / "brought.json"
    gpu_record.write_record(brought, {"name": "gpu_check", "gpu": "g", "command": "c",
                                      "seconds": 1.0, "date": "d"})
    target = tmp_path / "RESULTS.json"
    target.write_text(json.dumps({"command": "r", "total_s": 1, "date": "x",
                                  "records": [{"name": "memory"}]}))
    gpu_record.import_record(brought, target)
    assert [r["name"] for r in json.loads(target.read_text())["records"]] == ["memory",
                                                                             "gpu_check"]


def test_without_a_gpu_the_real_check_refuses_to_start(tmp_path):
    with pytest.raises(SystemExit, match=r"no GPU here .* use --dry-run"):
        gpu_check.main(["--results", str(tmp_path / "RESULTS.json")])
    assert not (tmp_path / "RESULTS.json").exists()


@pytest.mark.slow
def test_dry_run_runs_every_section_and_writes_the_record(tmp_path):
    results = tmp_path / "RESULTS.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--dry-run",
                           "--results", str(results), "--peak-tflops", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(results.read_text())["records"][-1]
    assert record["name"] == "gpu_check" and record["dry_run"] is True
    assert record["gpu"] is None and record["peak_bf16"] == {"entry": "--peak-tflops",
                                                             "tflops": 1.0}
    sections = record["figures"]["sections"]
    expected = {name: "ok" for name in gpu_check.SECTIONS}
    if find_spec("deepspeed") is None:
        expected["deepspeed"] = "skipped"
    assert {name: s["status"] for name, s in sections.items()} == expected
    for name in gpu_check.SECTIONS:  # one table, every section in it
        assert f"\n{name:<14}" in done.stdout
    ratios = record["ratios"]
    for key in ("hf_engine_over_generate_n8", "update_mfu_qwen2.5_1.5b", "update_mfu_qwen3_4b",
                "checkpointing_time_qwen2.5_1.5b", "padded_over_packed_time_qwen2.5_1.5b",
                "shared_prefix_speedup_qwen2.5_1.5b", "iteration_s", "iteration_update_share",
                "rollout_logprob_diff_bf16", "is_correction_mask_weight_mean",
                "is_correction_truncate_truncated_frac"):
        assert math.isfinite(ratios[key]) and ratios[key] >= 0, key
    assert 0 < ratios["iteration_update_share"] < 1
    assert 0.5 < ratios["is_correction_mask_weight_mean"] <= 2.0
    if expected["deepspeed"] == "ok":
        assert ratios["zero2_over_torch_tokens_per_s"] > 0
        assert ratios["zero3_over_torch_tokens_per_s"] > 0
    # Every update variant of the small model ran, each with its own tokens/s and MFU.
    variants = sections["update small"]["figures"]["variants"]
    assert [v["variant"] for v in variants] == [v.label for v in gpu_update.small_variants()]
    assert all(v["tokens_per_s"] > 0 and v["mfu"] > 0 for v in variants)
    iteration = sections["iteration"]["figures"]["record"]
    assert iteration["time/update"] > 0 and iteration["rollout/episodes"] == 2

    # Rerunning one section keeps the others' figures in the record.
    again = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--dry-run",
                            "--results", str(results), "--peak-tflops", "1", "--only",
                            "logprob gap"], cwd=ROOT, capture_output=True, text=True,
                           timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = json.loads(results.read_text())["records"][-1]
    assert rerun["rerun"] == ["logprob gap"]
    assert set(rerun["figures"]["sections"]) == set(sections)
    assert rerun["figures"]["sections"]["update small"] == sections["update small"]
    assert rerun["ratios"]["update_mfu_qwen3_4b"] == ratios["update_mfu_qwen3_4b"]
