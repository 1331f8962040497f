"""The documented list of metrics: one name per quantity, the same in metrics.jsonl, wandb,
tensorboard, plots and the viewer. `docs/metrics.md` is rendered from this table.

A segment written `<like_this>` stands for any one name (a task kind, a tool).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Episode statistics of one set of trajectories; logged as rollout/<name> (training episodes)
# and eval/<name> (evaluation episodes, greedy unless eval.greedy=false).
EPISODE: dict[str, str] = {
    "episodes": "episodes played",
    "reward": "mean episode score (sum of the environment's step rewards)",
    "success": "fraction of episodes the environment marked successful",
    "success/<task_kind>": "success per task kind (only when a set mixes kinds)",
    "turns": "mean turns per episode",
    "response_tokens": "mean generated tokens per episode",
    "turn_tokens": "mean generated tokens per turn",
    "invalid_rate": "fraction of turns the environment could not parse",
    "tool_calls": "mean tool calls per episode (tool metrics: only where the suite has tools "
                  "or an episode called one)",
    "tool_errors": "mean turns per episode whose step reported an error",
    "tool_error_rate": "fraction of tool calls whose status was not ok",
    "status_done": "episodes the environment ended",
    "status_truncated": "episodes stopped by a turn or token budget",
    "status_failed": "episodes lost to an environment exception (not trained on)",
    "gen_seconds": "mean seconds per episode spent waiting for the engine",
    "env_seconds": "mean seconds per episode spent in environment steps and tools",
    "wall_seconds": "mean seconds per episode from reset to close",
    "prompt_tokens": "mean context tokens the engine processed per episode (prefill work)",
    "evidence_found": "fraction of episodes whose retrieved passages held a gold answer "
                      "(suites that report it, e.g. search)",
    "success_given_evidence": "success among the episodes that found the evidence",
    "branched": "ARPO: fraction of episodes forked from another after a tool result",
    "branch_turn": "ARPO: mean turns a fork shares with its parent",
    "response_entropy": "ARPO: mean entropy of a response's first k tokens over "
                        "ln(vocabulary size) (the branching signal)",
}

METRICS: dict[str, str] = {
    "iteration": "RL iteration (SFT records use -1, the evaluation before training 0)",
    "policy_version": "weights version the engine serves after this iteration's sync",
    **{f"rollout/{k}": v for k, v in EPISODE.items()},
    **{f"eval/{k}": f"{v} (evaluation tasks)" for k, v in EPISODE.items()},
    "train/loss": "policy-gradient loss, token mean (same value as train/pg_loss)",
    "train/pg_loss": "PPO-clip loss per trained token",
    "train/kl": "approximate KL of the update (same value as train/approx_kl)",
    "train/approx_kl": "k3 estimate of KL(old || new), exp(r) - 1 - r with r = logp - old_logp, "
                       "per trained token",
    "train/entropy": "policy entropy per trained token (nats)",
    "train/clipfrac": "fraction of trained tokens whose ratio was clipped (low + high)",
    "train/clipfrac_low": "fraction clipped at 1 - clip_low (negative advantages)",
    "train/clipfrac_high": "fraction clipped at 1 + clip_high (positive advantages)",
    "train/ratio": "mean probability ratio new / old",
    "train/dual_clipfrac": "fraction of negative-advantage tokens capped by dual-clip",
    "train/logprob_diff": "mean |logp - old_logp| over all PPO passes",
    "train/ref_kl": "KL to the reference policy per trained token (loss.kl, when on)",
    "train/micro_batches": "forward/backward passes per rank in the update",
    "train/rollout_logprob_diff": "mean |trainer logp - rollout logp| before the update "
                                  "(engine/trainer mismatch; ~0 on-policy)",
    "train/grad_norm": "gradient norm before clipping, mean over optimizer steps",
    "train/optimizer_steps": "optimizer steps taken",
    "train/skipped_steps": "optimizer steps skipped for a non-finite gradient",
    "train/trained_tokens": "tokens with loss mask 1 in the batch",
    "train/lr": "learning rate",
    "train/skipped_no_data": "1 when every episode of the step failed: no update, no sync",
    "time/rollout": "seconds the step waited for its groups (the whole rollout when synchronous)",
    "time/generation": "time/rollout times the share of episode time spent waiting for the engine",
    "time/tools": "time/rollout times the share of episode time spent in tools and the environment",
    "time/credit": "seconds computing advantages and building the batch",
    "time/update": "seconds of the policy update",
    "time/sync": "seconds handing the new weights to the engine",
    "time/sample": "seconds saving the trajectory sample (its trainer log-probs included)",
    "time/iteration": "seconds of the whole iteration",
    "perf/gen_tokens_per_s": "tokens of the step's groups per second the engine had work",
    "perf/train_tokens_per_s": "trained tokens per second of update",
    "perf/tokens_per_s": "generated plus trained tokens per second of iteration",
    "sft/loss_first": "SFT loss of the first step",
    "sft/loss_last": "SFT loss of the last step",
    "sft/rows": "SFT rows (demonstration turns or episodes)",
    "sft/tokens": "SFT tokens trained on",
    "sft/steps": "SFT optimizer steps (every epoch)",
    "time/sft": "seconds of SFT training",
    "time/sft_demonstrations": "seconds playing the oracle's demonstrations (also when SFT was "
                               "cached: they key the cache)",
    "perf/sft_tokens_per_s": "SFT tokens trained per second (every epoch)",
    # turnwise eval / the loop's evaluation: estimates with 95% intervals (trainer/evaluate.py)
    **{f"eval/{k}{suffix}": f"{v}{what}"
       for k, v in {"success": "success rate (Wilson interval over episodes)",
                    "score": "mean task score, e.g. F1 or WebShop's score (bootstrap over tasks)",
                    "reward": "mean episode reward (bootstrap over tasks)",
                    "turns": "mean turns per episode (bootstrap over tasks)",
                    "tool_calls": "mean tool calls per episode (bootstrap over tasks)",
                    "pass@<k>": "unbiased pass@k over the samples of each task"}.items()
       for suffix, what in (("", ""), ("_low", ": lower end of the 95% interval"),
                            ("_high", ": upper end of the 95% interval"))},
    "rollout/tool_timeouts": "mean tool calls per episode that timed out",
    "eval/tool_timeouts": "mean tool calls per episode that timed out (evaluation tasks)",
    # per tool, from the executor (tools/metrics.py), this iteration's training rollouts only
    "tools/<tool>/calls": "calls of the tool",
    "tools/<tool>/errors": "calls that ended in an error",
    "tools/<tool>/timeouts": "calls that hit the per-call timeout",
    "tools/<tool>/invalid": "calls with arguments that failed the tool's schema",
    "tools/<tool>/retries": "retries of transient failures",
    "tools/<tool>/truncated": "results cut to the output token budget",
    "tools/<tool>/error_rate": "(errors + timeouts) / calls",
    "tools/<tool>/latency_p50": "median call latency (s)",
    "tools/<tool>/latency_p90": "90th percentile call latency (s)",
    "tools/<tool>/latency_p99": "99th percentile call latency (s)",
    "tools/<tool>/latency_mean": "mean call latency (s)",
    "tools/(unknown)/<metric>": "the same counters for calls to names no tool has (every "
                                "misspelling under this one name)",
    # feedback turns (envs/feedback, docs/feedback.md): the episodes a `feedback` suite played
    # since the last step (training rollouts only); per rank, averaged over ranks
    "feedback/episodes": "episodes ended (answered, out of attempts, or cut short)",
    "feedback/success@<k>": "share of episodes solved within k answers (k = 1: single-attempt "
                            "success; k = max_attempts: multi-attempt success)",
    "feedback/attempts": "mean answers per episode",
    "feedback/attempts_per_solve": "mean answers of the solved episodes (the answer that solved "
                                   "it included; NaN when none was solved)",
    "feedback/repeat_rate": "share of answers after the first that repeat an earlier answer of "
                            "the episode (NaN without retries)",
    "feedback/reason/<reason>": "share of feedback turns given for the reason: try_again, or a "
                                "critique's format, evidence, wrong_value or empty_critique",
    # the credit stage (trainer/credit_stage.py, trainer/igpo_scoring.py)
    "credit/flat_groups": "share of groups whose episodes all scored alike (no outcome signal)",
    "dynamic_sampling/rolls": "groups examined this step / groups per step (DAPO dynamic "
                              "sampling)",
    "dynamic_sampling/dropped_groups": "groups dropped because all their rewards were equal",
    "dynamic_sampling/kept_groups": "groups kept for training",
    "offpolicy/weight_mean": "mean behaviour -> proximal importance weight per trained token "
                             "(loss.is_correction; with old_logprobs loglinear, over every "
                             "pass of the update)",
    "offpolicy/truncated_frac": "share of trained tokens whose weight was truncated at the cap",
    "offpolicy/masked_frac": "share of trained tokens dropped for a weight past the cap",
    "offpolicy/alpha_mean": "mean log-linear proximal weight alpha = (W - v) / (W + 1 - v) per "
                            "trained token (train.old_logprobs=loglinear; 0: all on-policy)",
    # the task-sampling stage (trainer/task_sampling, docs/task_sampling.md); a part is a task
    # kind; per rank, averaged over ranks
    "task_sampling/flat_share": "share of this step's examined groups whose episodes all scored "
                                "alike (rollouts that teach nothing; dropped ones included)",
    "task_sampling/<part>/prob": "probability that the sampler's next draw comes from the part "
                                 "(dump: softmax of UCB scores; difficulty_band: its share of "
                                 "the eligible prompts; mopps: its share of the last selection; "
                                 "uniform: its weight, or its share of the suite's draws)",
    "task_sampling/<part>/share": "the part's share of this step's examined groups",
    "task_sampling/<part>/pass_rate": "success rate of this step's episodes of the part",
    "task_sampling/<part>/adv_abs": "mean absolute advantage of this step's episodes of the part "
                                    "(an episode's: the mean over its turns; flat dropped "
                                    "groups: 0)",
    "task_sampling/<part>/ucb": "dump: the part's UCB score, windowed mean absolute advantage "
                                "plus the exploration bonus",
    "task_sampling/<part>/window_adv_abs": "dump: mean absolute advantage over the part's "
                                           "window",
    "task_sampling/<part>/eligible": "difficulty_band: share of the part's prompts unmeasured or "
                                     "last measured inside the band",
    "task_sampling/<part>/predicted_pass_rate": "mopps: mean posterior success rate over the "
                                                "part's prompts",
    # the rollout stage (rollouts/producer.py, trainer/rollout_stage.py)
    "async/staleness_mean": "mean age in policy versions of the groups trained on (their "
                            "oldest turn)",
    "async/staleness_max": "oldest group trained on, in policy versions",
    "async/stale_dropped": "groups dropped for being older than rollout.max_staleness",
    "async/stale_kept": "groups older than rollout.max_staleness kept and corrected",
    "async/in_flight": "groups still being played when the step ended",
    "async/replayed_groups": "groups a resumed run plays again (started, never trained on)",
    # the engine (agent/engines/server.py), since the last step
    "engine/retries": "requests retried on another server after a failure",
    "engine/taken_out": "servers taken out of the pool (failed a health check)",
    "engine/readmitted": "servers readmitted after answering their health check again",
    "time/engine_idle_share": "share of the step's wall time with no generation in flight",
    "time/trainer_idle_share": "share of the step's wall time the trainer waited for groups",
    "igpo/score_seconds": "seconds of IGPO's answer-scoring pass",
    "igpo/score_forwards": "forward passes of the scoring pass",
    "igpo/score_tokens": "tokens the scoring pass ran through the model",
    "igpo/probes": "answer probes scored (one per turn prefix)",
}


def documented(key: str) -> bool:
    """Whether `key` is in the documented list (a `<placeholder>` matches any text but '/')."""
    return any(pattern.fullmatch(key) for pattern in _PATTERNS)


_PATTERNS = [re.compile(re.sub(r"<[^>]+>", "[^/]+", re.escape(name).replace(r"\<", "<").replace(r"\>", ">")))
             for name in METRICS]


def undocumented(keys: Iterable[str]) -> list[str]:
    """The keys of `keys` missing from the documented list, sorted."""
    return sorted({k for k in keys if not documented(k)})


def render_markdown() -> str:
    """docs/metrics.md: every metric, grouped by its prefix."""
    lines = ["# Metrics", "",
             ("Every metric turnwise logs, under the same name in `metrics.jsonl`, wandb, "
              "tensorboard and the plots."),
             ("Generated from `trainer/report/metric_names.py` "
              "(`python -m turnwise.trainer.report.metric_names > docs/metrics.md`)."),
             "A segment written `<like_this>` stands for any one name.", ""]
    groups: dict[str, list[str]] = {}
    for name in METRICS:
        groups.setdefault(name.split("/")[0] if "/" in name else "", []).append(name)
    for prefix, names in groups.items():
        lines += [f"## {prefix or 'run'}", "", "| metric | meaning |", "| --- | --- |"]
        lines += [f"| `{n}` | {METRICS[n]} |" for n in names]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
