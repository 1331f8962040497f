"""`skyrl_gym`: SkyRL-gym's text environments on dataset rows supplied as local files.

Needs `pip install skyrl-gym==0.4.0` (the `envs` extra). A row is what SkyRL's datasets hold:
`prompt` (chat messages), `env_class` (a registered SkyRL-gym id such as `gsm8k` or
`gsm8k_multi_turn`), `reward_spec` (e.g. `{ground_truth: "72"}`) and `extra_info`; the files
(`.jsonl`, `.json` or `.parquet`) are given per split in `data`. Each episode builds the row's
environment (`skyrl_gym.make(env_class, env_config=..., extras=row)`), shows the prompt's system
message as the system prompt and the rest as the first observation, and passes the
environment's observations and rewards through. Success: a step reward of at least
`success_threshold`. The oracle answers the row's ground truth written with `answer_format`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..base import EnvUnavailable, Observation, Step, Task, register_suite

INSTALL = "pip install 'turnwise[envs]' (or skyrl-gym==0.4.0)"


def require_skyrl_gym() -> Any:
    """The `skyrl_gym` module, or EnvUnavailable saying how to install it."""
    try:
        import skyrl_gym
    except ImportError as exc:
        raise EnvUnavailable(f"env.name='skyrl_gym' needs the skyrl-gym package ({exc}): "
                             f"{INSTALL}") from None
    return skyrl_gym


def read_rows(path: str) -> list[dict[str, Any]]:
    """The rows of a `.jsonl`, `.json` (a list) or `.parquet` file; errors name the file."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"env.options.data: no file {path!r}")
    try:
        if file.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(file).to_pylist()
        elif file.suffix == ".json":
            rows = json.loads(file.read_text())
        elif file.suffix == ".jsonl":
            rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        else:
            raise ValueError("expected .jsonl, .json or .parquet")
    except (ValueError, OSError) as exc:
        raise ValueError(f"env.options.data: cannot read {path!r}: {exc}") from None
    bad = next((i for i, r in enumerate(rows) if not (isinstance(r, dict) and "prompt" in r
                                                        and "env_class" in r)), None)
    if bad is not None:
        raise ValueError(f"env.options.data: {path!r} row {bad} lacks prompt or env_class")
    return rows


def _text(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(str(m["content"]) for m in messages)


class SkyRLGymEnv:
    """One row's SkyRL-gym environment."""

    def __init__(self, skyrl_gym: Any, env_config: dict[str, Any], *,
                 success_threshold: float = 1.0, max_steps: int = 50) -> None:
        self.skyrl_gym, self.env_config = skyrl_gym, env_config
        self.success_threshold, self.max_steps = success_threshold, max_steps
        self.env: Any = None
        self.system_prompt, self.steps = "", 0

    async def reset(self, task: Task) -> Observation:
        row = task.data["row"]
        self.env = self.skyrl_gym.make(row["env_class"], env_config=self.env_config, extras=row)
        messages, _ = self.env.init(list(row["prompt"]))
        self.system_prompt = _text([m for m in messages if m["role"] == "system"])
        text = _text([m for m in messages if m["role"] != "system"])
        self.steps = 0
        return Observation(text=text, anchor=text)

    async def step(self, action_text: str) -> Step:
        if self.env is None:
            raise RuntimeError("SkyRLGymEnv.step before reset")
        self.steps += 1
        out = self.env.step(action_text)
        reward = float(out["reward"])
        done = bool(out["done"]) or self.steps >= self.max_steps
        text = _text(out["observations"])
        role = "tool" if out["observations"] and out["observations"][0]["role"] == "tool" else "user"
        info = {"success": reward >= self.success_threshold, "invalid": False,
                "action": out.get("postprocessed_action") or action_text.strip(),
                "truncated": done and not out["done"]}
        return Step(Observation(text=text, anchor=text, role=role), reward, done, info)

    async def close(self) -> None:
        env, self.env = self.env, None
        if env is not None:
            env.close()


class AnswerOracle:
    """Replies with the row's ground truth in the suite's answer format."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def act(self, observation: Observation) -> str:
        return self.reply


@register_suite("skyrl_gym")
class SkyRLGymSuite:
    """Rows of local SkyRL-format files as tasks; `data` maps a split to its file."""

    name = "skyrl_gym"

    def __init__(self, *, data: dict[str, str], env_config: dict[str, Any] | None = None,
                 success_threshold: float = 1.0, max_steps: int = 50,
                 answer_format: str | None = None) -> None:
        self.skyrl_gym = require_skyrl_gym()
        if not isinstance(data, dict) or not data:
            raise ValueError("env.options.data: a mapping of split to file, e.g. "
                             "{train: train.jsonl, valid: valid.jsonl}")
        self.rows = {split: read_rows(path) for split, path in data.items()}
        from skyrl_gym.envs.registration import registry

        unknown = sorted({r["env_class"] for rows in self.rows.values() for r in rows} - set(registry))
        if unknown:
            raise ValueError(f"env.options.data: env_class {unknown} not registered in SkyRL-gym; "
                             f"registered are {sorted(registry)}")
        self.answer_format = answer_format
        self.env_options = dict(success_threshold=success_threshold, max_steps=max_steps)
        self.env_config = dict(env_config or {})

    def make(self) -> SkyRLGymEnv:
        return SkyRLGymEnv(self.skyrl_gym, self.env_config, **self.env_options)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` rows of `split`, shuffled by `seed` (cycling when count exceeds them)."""
        if split not in self.rows:
            raise ValueError(f"skyrl_gym split={split!r}: allowed are {sorted(self.rows)} "
                             "(the splits env.options.data names)")
        rows = self.rows[split]
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        picked = [order[i % len(order)] for i in range(count)]
        return [Task(id=f"skyrl_gym/{split}/{i}", kind=rows[i]["env_class"],
                     answer=_ground_truth(rows[i]), data={"row": rows[i]}) for i in picked]

    def oracle(self, task: Task) -> AnswerOracle:
        if self.answer_format is None or task.answer is None:
            raise ValueError("skyrl_gym's oracle writes reward_spec.ground_truth with "
                             "env.options.answer_format (e.g. '#### {answer}'); set it, or train "
                             "without demonstrations (sft.episodes: 0)")
        return AnswerOracle(self.answer_format.format(answer=task.answer))

    def corpus(self) -> Iterable[str]:
        for rows in self.rows.values():
            for row in rows[:500]:
                yield _text(row["prompt"])
                if self.answer_format and _ground_truth(row) is not None:
                    yield self.answer_format.format(answer=_ground_truth(row))


def _ground_truth(row: dict[str, Any]) -> str | None:
    truth = (row.get("reward_spec") or {}).get("ground_truth")
    return None if truth is None else str(truth)
