"""Writing benchmarks/RESULTS.md from one `run_all` run: summary of ratios, scaling note, tables."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any


def _fig(records: list[dict], name: str) -> dict | None:
    for r in records:
        if r["name"] == name:
            return r.get("figures")
    return None


def summary_rows(records: list[dict]) -> list[tuple[str, str, str]]:
    """(what, measured, target) for every headline figure this run produced."""
    rows = []
    if f := _fig(records, "rollout_scheduling"):
        for r in f["rows"]:
            rows.append((f"rollout, C={r['capacity']}: lock-step / async",
                         f"{r['lockstep/async']:.2f}x", ">= 2"))
            rows.append((f"rollout, C={r['capacity']}: async / generation only",
                         f"{r['async/gen-only']:.2f}x", "<= 1.15"))
    if f := _fig(records, "engine_overhead_hf"):
        for r in f["rows"]:
            rows.append((f"hf engine, N={r['concurrency']}: engine / batched generate (+logprobs)",
                         f"{r['engine/generate+lp']:.2f}x", "<= 1.10"))
            rows.append((f"hf engine, N={r['concurrency']}: engine / batched generate (tokens only)",
                         f"{r['engine/generate']:.2f}x", "<= 1.10"))
    if f := _fig(records, "engine_overhead_vllm"):
        for r in f["rows"]:
            rows.append((f"vllm engine, N={r['concurrency']}: engine / LLM.generate",
                         f"{r['engine/LLM.generate']:.2f}x", "<= 1.10"))
    if f := _fig(records, "server_engine"):
        for r in f["rows"]:
            what = f"server engine, N={r['concurrency']}: vLLM server over HTTP / in-process vllm"
            rows.append((what, f"{r['server/in-process']:.2f}x", "<= 1.15"))
            if "cpu server/in-process" in r:
                rows.append((f"{what} (CPU seconds, all processes)",
                             f"{r['cpu server/in-process']:.2f}x", ""))
        scale, sync = f["scale"], f["sync"]
        rows.append((f"server engine, N={scale['concurrency']}: one server / two servers (time)",
                     f"{scale['one/two']:.2f}x", ""))
        rows.append((f"weight sync to a vLLM server on CPU ({sync['mb']:.0f} MB, file path)",
                     f"{sync['sync_s_per_100mb']:.2f} s per 100 MB", ""))
    if f := _fig(records, "trl_comparison"):
        rows.append(("GRPO iteration: TRL GRPOTrainer / turnwise (time per iteration)",
                     f"{f['trl/turnwise']:.2f}x", ">= 1.5"))
        tps = f["tokens_per_s"]
        rows.append(("GRPO trained tokens/s: turnwise vs TRL",
                     f"{tps['turnwise']:.0f} vs {tps['trl']:.0f}", ""))
    if f := _fig(records, "prefix_sharing"):
        for w in f["workloads"]:
            plain, shared = w["computed_tokens"]
            rows.append((f"update time, household {w['rows']}: plain / shared prefixes",
                         f"{w['plain/shared']:.2f}x ({plain:,} -> {shared:,} tokens computed)", ""))
    if f := _fig(records, "credit_overhead"):
        turns = f["groups"] * 400
        gigpo = f["estimators_at_scale_s"].get("gigpo")
        if gigpo is not None:
            rows.append((f"GiGPO credit on {turns:,} turns / GiGPO paper's 363 s iteration",
                         f"{gigpo:.2f} s = {gigpo / 363:.2%}", ""))
        igpo = f["igpo"]
        rows.append(("IGPO scoring pass / training step on the same batch",
                     f"{igpo['share_of_step']:.1%}", ""))
    if f := _fig(records, "train_backends"):
        for c in f["configs"][1:]:
            label = f"update tokens/s: {c['backend']} ({c['procs']} proc x {c['threads']} thr)"
            rows.append((f"{label} / torch (1 x 1)", f"{c['ratio']:.2f}x", ""))
    if f := _fig(records, "gateway_overhead"):
        for r in f["rows"]:  # the scripted engine's: the hf rows' differences are noise-bound
            if r["engine"] != "scripted":
                continue
            what = f"gateway, N={r['concurrency']}: overhead per request"
            if "overhead_cpu_ms" in r:
                rows.append((f"{what}, CPU (+ openai client {r['overhead_client_cpu_ms']:.1f} ms)",
                             f"{r['overhead_cpu_ms']:.2f} ms", "<= 5 ms"))
            if r["concurrency"] == 1:
                rows.append((f"{what} (p50; + openai client {r['overhead_client_ms_p50']:.1f} ms)",
                             f"{r['overhead_ms_p50']:.2f} ms", "<= 5 ms"))
            else:
                rows.append((f"{what} (excess wall time / requests)",
                             f"{r['overhead_ms_wall']:.2f} ms", ""))
    if f := _fig(records, "async_training"):
        for workload, label, target in (("tools", "heavy-tailed tools", ">= 2 at k >= 2"),
                                        ("no_tools", "no tool latency", ">= 1")):
            for r in f[workload][1:]:
                if r["k"] in ("k=1 plain", "sync+recompute"):
                    continue  # the contenders that separate the costs
                rows.append((f"async training, {label}: sync / {r['k']} (time per iteration)",
                             f"{r['sync/this']:.2f}x", target))
    if f := _fig(records, "memory"):
        for r in f["rows"]:
            if r["turns"] in (1, 16) and r["prompt"] == 128:
                what = f"update RSS, {r['mode']}, {r['turns']} turns, {r['trained_tokens']} tokens"
                rows.append((what, f"{r['mib_per_1k_trained']:.0f} MiB / 1k tokens", ""))
    return rows


def scaling_note(records: list[dict]) -> str:
    """The written model of an iteration's time, with this run's figures where it rests on them."""
    trl = _fig(records, "trl_comparison")
    credit = _fig(records, "credit_overhead")
    rollout = _fig(records, "rollout_scheduling")
    backends = _fig(records, "train_backends")
    memory = _fig(records, "memory")
    out = ["## Scaling note", "",
           ("One iteration is `T = T_gen + T_tools,exposed + T_credit + T_update + T_sync` "
            "(trainer/loop.py logs each as `time/*`). What each term is made of, and how it grows:"),
           ""]
    if trl:
        p = trl["turnwise_phases"]
        total = sum(p.values())
        out.append(f"- **Measured split** (tiny model, {trl['params'] / 1e6:.2f}M parameters, "
                   f"{trl['prompts']} prompts x {trl['group']} completions x "
                   f"{trl['tokens_per_completion']} tokens, CPU): " + ", ".join(
                       f"{k} {v:.3f} s ({v / total:.0%})" for k, v in p.items()) + ".")
    out.append(
        "- **Generation** is decode steps x time per step. Steps = turns x tokens per turn (the "
        "longest episode of a batch bounds the wall time); a decode step reads every weight once "
        "and the KV cache of every row, so on a GPU it is memory-bandwidth bound: ~2P bytes (bf16) "
        "per step regardless of batch until the batch is compute bound. It grows linearly with "
        "model size and with episode length, and falls ~1/G with G GPUs, each rank generating for "
        "its own groups (no cross-rank traffic).")
    if rollout:
        worst = max(r["async/gen-only"] for r in rollout["rows"])
        best = min(r["lockstep/async"] for r in rollout["rows"])
        out.append(
            f"- **Tools** overlap generation under the async orchestrator: with heavy-tailed "
            f"latency (median 50 ms, p99 1 s) the rollout took at most {worst:.2f}x the "
            f"generation-only time: exposed tool waits added at most {worst - 1:.0%}; "
            f"verl-agent's lock-step loop waits for the slowest tool every turn and was "
            f">= {best:.1f}x slower. Exposed tool time does not grow with model size (slower "
            "generation hides more of it); it grows with the tail of the tool latency and the "
            "number of turns.")
    if credit:
        at = credit["estimators_at_scale_s"]
        turns = credit["groups"] * 400
        slowest = max(at, key=at.get)
        igpo = credit["igpo"]
        out.append(
            f"- **Credit** estimators are model-free and linear in turns: on {turns:,} turns the "
            f"slowest ({slowest}) took {at[slowest]:.2f} s, GiGPO {at.get('gigpo', float('nan')):.2f} s "
            f"({at.get('gigpo', float('nan')) / 363:.2%} of the 363 s ALFWorld iteration the "
            "GiGPO paper reports); the cost does not depend on model size or GPUs. IGPO adds a "
            f"scoring pass (a no-grad forward over each episode plus one answer probe per turn, "
            f"prefixes shared): {igpo['share_of_step']:.0%} of a training step on the same batch "
            f"here, {igpo['unshared_s'] / igpo['scoring_s']:.1f}x cheaper than one forward per "
            "prefix. A forward is ~1/3 of a forward+backward, so its share stays roughly constant "
            "as the model grows (~2P FLOPs per token vs ~6P for the update).")
    if trl:
        out.append(
            f"- **Against TRL** (`GRPOTrainer`, same model, prompts, lengths, reward, loss): "
            f"TRL took {trl['trl/turnwise']:.2f}x turnwise's time per iteration. Both train the "
            "same tokens with the same loss; turnwise's update runs each group's prompt once "
            "and shares it with the group's completions as a KV cache (trainer/shared_prefix.py), "
            "where TRL runs it once per completion, and scores only trained tokens through the "
            "LM head. Every completion is forced to full length, which switches off the "
            "engine's main advantage (finished rows leave the batch at once).")
    out.append(
        "- **Update** costs ~6P FLOPs per input token (forward + backward) plus attention, "
        "quadratic in row length. Prompt and observation tokens are computed although only "
        "response tokens are trained, but rows of a group that start alike run their common "
        "prefix once (trainer/shared_prefix.py): a GRPO group's prompt is paid once, not G "
        "times. Full-trajectory rows then pay the prompt once per group and the rest of the "
        "context once per episode; per-step rows pay the task's shared system prompt and task "
        "once per group and their history window once per turn. The LM head and vocabulary "
        "softmax run on trained tokens only (trainer/logprobs.py `needed`).")
    if memory:
        by_mode: dict[str, list[dict]] = {}
        for r in memory["rows"]:
            if r["prompt"] == 128:
                by_mode.setdefault(r["mode"], []).append(r)
        parts = [f"{mode}: " + ", ".join(f"{r['turns']} turns {r['update_peak_mib']:.0f} MiB"
                                        for r in rows) for mode, rows in by_mode.items()]
        out.append(
            "- **Memory** of the update is set by the micro-batch (`train.micro_batch_tokens`, "
            f"{memory['micro_batch_tokens']} here), not by the batch: activations grow linearly "
            "with the micro-batch's tokens and attention quadratically with row length "
            "(CPU sdpa materialises it). Measured update peak RSS, tiny model: "
            + "; ".join(parts) + ". Long full-trajectory rows are what needs gradient "
            "checkpointing or a smaller budget first.")
    if backends:
        configs = ", ".join(f"{c['backend']} {c['procs']}x{c['threads']}: {c['ratio']:.2f}x"
                            for c in backends["configs"])
        out.append(
            f"- **GPUs** split the update by data parallelism (DeepSpeed ZeRO): per rank "
            f"~T_update/G plus gradient reduction (ZeRO-2) or also parameter gathers on every "
            f"forward and backward (ZeRO-3, ~1.5x ZeRO-2's traffic). Measured on this CPU with "
            f"gloo ranks ({backends['params'] / 1e6:.1f}M parameters, tokens/s relative to one "
            f"torch process): {configs}. On CPU the ranks share the same cores and gloo is slow, "
            "so these ratios bound the framework overhead rather than predict GPU scaling.")
    out.append(
        "- **Sync** copies 2P bytes (bf16) from trainer to engine: milliseconds in-process for "
        "the tiny model (`hf` engine), one host round trip for vLLM (safetensors in /dev/shm). "
        "It grows linearly with model size and is paid once per iteration.")
    if server := _fig(records, "server_engine"):
        out.append(server_note(server))
    out.append(
        "- **Putting it together**: generation dominates as episodes lengthen (linear in turns x "
        "tokens, hard to parallelise within an episode); the update dominates for long contexts "
        "(quadratic attention, observation tokens recomputed); credit stays well under 1% of an "
        "iteration at realistic sizes; IGPO's scoring pass is the one credit cost that scales "
        "with the model, at a fraction of the update.")
    out.append("")
    out.append("GPU (bf16) figures were not measured here: this machine has no GPU. "
               "`python -m benchmarks.train_backends --device cuda ...` and the vLLM engine "
               "benchmark on a CUDA build of vLLM are the commands to run where one is available.")
    return "\n".join(out)


def server_note(f: dict) -> str:
    """What the server engine's figures say about serving rollouts from vLLM servers."""
    ratios = ", ".join(
        f"{r['server/in-process']:.2f}x the time"
        + (f" ({r['cpu server/in-process']:.2f}x the CPU seconds)"
           if "cpu server/in-process" in r else "") + f" at N={r['concurrency']}"
        for r in f["rows"])
    splits = "; ".join(
        f"N={r['concurrency']}: client {r['server_cpu_split']['client']:.2f} s, vLLM's API "
        f"process {r['server_cpu_split']['api_process']:.2f} s, its engine "
        f"{r['server_cpu_split']['engine_processes']:.2f} s, against "
        f"{r['cpu_s']['in-process']:.2f} s for the whole in-process engine"
        for r in f["rows"] if "server_cpu_split" in r)
    scale, sync = f["scale"], f["sync"]
    gb = 3.0  # a 1.5B-parameter model in bf16
    return (
        "- **Servers** (`engine.kind: server`): one vLLM server over HTTP against the "
        f"in-process vllm engine on the same requests: {ratios}. It adds JSON, an HTTP hop, "
        "the server's API process and requests that reach the scheduler one by one, a cost "
        "per request that longer generations or a larger model hide."
        + (f" CPU seconds per round of the server path ({splits})." if splits else "")
        + " Two servers against one at "
        f"N={scale['concurrency']}: {scale['one/two']:.2f}x ({scale['share_on_second']:.0%} of "
        "the requests on the second). Here both servers, their API processes and the client "
        "share two cores, so this bounds the balancing overhead rather than predicting "
        "scale-out; on GPUs each server owns its GPUs and decoding is memory-bound per GPU, "
        "so rollout throughput grows about linearly with servers until the trainer (update "
        "and weight sync) or the environments are the bottleneck. The CPU weight-sync path "
        f"(safetensors in /dev/shm, loaded through the worker extension) took "
        f"{sync['sync_s_per_100mb']:.2f} s per 100 MB ({sync['mb']:.0f} MB model, the file "
        f"write {sync['write_s']:.2f} s of {sync['sync_s']:.2f} s): ~"
        f"{sync['sync_s_per_100mb'] * gb * 10:.0f} s for a 1.5B bf16 model ({gb:.0f} GB), paid "
        "in parallel on every server. vLLM's NCCL broadcast from trainer rank 0 would replace "
        "the file on GPUs (not implemented here: no GPU to test it on).")


def elsewhere(record: dict, notes: dict[str, Any]) -> str:
    """' on <machine>' when `record` ran on another machine (or library versions) than `notes`."""
    own = record.get("machine") or (record.get("figures") or {}).get("machine") or {}
    keys = ("cpu", "cores", "torch", "transformers")
    if not own or all(own.get(k) == notes.get(k) for k in keys):
        return ""
    return (f" on {own.get('cpu')}, {own.get('cores')} cores, torch {own.get('torch')}, "
            f"transformers {own.get('transformers')}")


def write_results(path: Path, records: list[dict], notes: dict[str, Any], *, command: str,
                  total_s: float, quick: bool, date: str | None = None) -> None:
    """RESULTS.md: machine, summary of ratios, scaling note, each benchmark's command and table.
    `date` is the day of the run (default today); records with a `rerun` date came later."""
    vllm_notes = next((r["figures"]["machine"] for r in records
                       if r["name"] == "engine_overhead_vllm" and r.get("figures")), None)
    rerun = [r["name"] for r in records if r.get("rerun")]
    source = (f"that run except {', '.join(rerun)}, rerun later with `--only` (their sections "
              "give the date)") if rerun else "this one run"
    lines = ["# Benchmark results", "",
             (f"Written by `{command}` (`make bench`) on "
              f"{date or datetime.date.today().isoformat()} in {total_s / 60:.1f} min. Every "
              f"figure below comes from {source}; each is a median of repeats, contenders "
              "interleaved.")]
    if quick:
        lines += ["", ("**Quick run: toy sizes; these figures check that the benchmarks run and "
                       "are not measurements.**")]
    lines += ["", "## Machine", "",
              (f"- CPU: {notes.get('cpu')}, {notes.get('cores')} cores (shared with other work: "
               "timings are noisy, which is why contenders run interleaved)"),
              (f"- torch {notes.get('torch')}, transformers {notes.get('transformers')}, "
               f"trl {notes.get('trl', 'not installed')}, deepspeed {notes.get('deepspeed', '-')}, "
               f"Python {notes.get('python')}")]
    if vllm_notes:
        lines.append(f"- vLLM {vllm_notes.get('vllm')} (CPU build, .venv-vllm, torch "
                     f"{vllm_notes.get('torch')}, transformers {vllm_notes.get('transformers')})")
    lines += ["- GPU: none. GPU (bf16) figures were not measured here.", "",
              "## Summary", "", "| figure | measured | target |", "| --- | --- | --- |"]
    lines += [f"| {what} | {value} | {target} |" for what, value, target in summary_rows(records)]
    lines += ["", scaling_note(records), "", "## Each benchmark", ""]
    for r in records:
        lines.append(f"### {r['name']}")
        lines.append("")
        lines.append(f"`{r['command']}`" + (f" ({r['seconds']:.0f} s)" if "seconds" in r else "")
                     + (f", rerun on {r['rerun']}{elsewhere(r, notes)}" if r.get("rerun") else ""))
        lines.append("")
        if "skipped" in r:
            lines.append(f"Skipped: {r['skipped']}.")
        else:
            lines += ["```", r.get("table") or "(no output)", "```"]
            if "error" in r:
                lines += ["", "Failed:", "```", r["error"], "```"]
        lines.append("")
    path.write_text("\n".join(lines))
