"""Building a run from a recipe: the parts `turnwise train` and `turnwise eval` share, each made
once and complete when made.

`basics` needs no weights (the suite, the chat format, the episode settings: the oracle's
demonstrations need only these); `build_run` adds the engine, the orchestrator and, to train,
the backend, all serving the model folder it is given (the recipe's, a cached SFT policy, a
run's final policy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..agent.chat import ChatFormatter
from ..agent.engines import InferenceEngine, SamplingParams
from ..envs.base import EnvSuite, make_suite, suite_has_tools, suite_tool_schemas
from ..envs.program import is_program_suite
from ..rollouts.arpo import ArpoSettings
from ..rollouts.episode import EpisodeSettings
from ..rollouts.orchestrator import Orchestrator
from ..rollouts.programs import ProgramOrchestrator
from ..rollouts.progress import make_progress
from .config import Config, RolloutConfig
from .dist import World
from .engine_factory import build_engine
from .models import load_tokenizer, pick_device


@dataclass(frozen=True)
class Basics:
    """What a run needs before any weights."""

    suite: EnvSuite
    tokenizer: Any
    formatter: ChatFormatter
    settings: EpisodeSettings  # training rollouts
    pad_id: int


@dataclass
class Run:
    """A run's working parts, serving one model folder."""

    basics: Basics
    model_path: str
    engine: InferenceEngine
    orchestrator: Orchestrator
    backend: Any | None  # None: evaluation only

    async def close(self) -> None:
        await self.engine.close()


def episode_settings(r: RolloutConfig, *, greedy: bool = False) -> EpisodeSettings:
    """The episode settings of a recipe's rollouts; `greedy` for evaluation (temperature 0).

    The one place a config becomes episode settings: training, in-training evaluation and
    `turnwise eval` all come through here.
    """
    sampling = SamplingParams(temperature=0.0 if greedy else r.temperature, top_p=r.top_p,
                              top_k=r.top_k, stop=tuple(r.stop))
    return EpisodeSettings(mode=r.mode, history=r.history, max_turns=r.max_turns,
                           max_tokens_per_turn=r.max_tokens_per_turn,
                           max_episode_tokens=r.max_episode_tokens,
                           show_admissible=r.show_admissible, sampling=sampling,
                           template_mismatch=r.template_mismatch, step_timeout=r.step_timeout)


def eval_settings(cfg: Config, *, sampled: bool = False) -> EpisodeSettings:
    """Evaluation episodes: greedy unless `eval.greedy` is off or `sampled` asks otherwise."""
    return episode_settings(cfg.rollout, greedy=cfg.eval.greedy and not sampled)


def basics(cfg: Config, model_path: str) -> Basics:
    """The suite, the tokenizer of `model_path` and the chat format over them."""
    suite = make_suite(cfg.env.name, **cfg.env.options)
    tokenizer = load_tokenizer(model_path)
    # Tool suites with JSON calls (hermes) list their tool schemas through the chat template.
    formatter = ChatFormatter(tokenizer, tools=suite_tool_schemas(suite))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else formatter.eos_id
    return Basics(suite, tokenizer, formatter, episode_settings(cfg.rollout), pad_id)


def orchestrator(cfg: Config, base: Basics, engine: InferenceEngine | None, *,
                 main: bool = True) -> Orchestrator | ProgramOrchestrator:
    """The orchestrator a recipe describes (engine None: it plays demonstrations only); only the
    `main` process (rank 0) shows its progress."""
    r = cfg.rollout
    quiet = cfg.log.quiet or not main
    # Deterministic mode plays one episode at a time, so no request's numbers depend on which
    # others the engine happened to batch it with.
    concurrency = 1 if cfg.deterministic else r.max_concurrency
    if is_program_suite(base.suite):
        return program_orchestrator(cfg, base, engine, concurrency=concurrency, quiet=quiet)
    tools = suite_has_tools(base.suite)
    return Orchestrator(engine, base.suite, base.formatter, base.settings,
                        max_concurrency=concurrency,
                        max_tool_concurrency=r.max_tool_concurrency, schedule=r.schedule,
                        quiet=quiet,
                        arpo=ArpoSettings(**r.arpo.model_dump()) if r.arpo else None,
                        progress=lambda tag: make_progress(tag, quiet=quiet, tools=tools))


def program_orchestrator(cfg: Config, base: Basics, engine: InferenceEngine | None, *,
                         concurrency: int, quiet: bool) -> ProgramOrchestrator:
    """The orchestrator of an agent-program suite (its episodes go through the gateway)."""
    r = cfg.rollout
    if r.arpo is not None:
        raise ValueError(f"rollout.arpo is set but env.name={cfg.env.name!r} is an agent program, "
                         "which drives its own loop and cannot be forked mid-episode; allowed: "
                         "rollout.arpo null")
    if r.schedule != "async":
        raise ValueError(f"rollout.schedule={r.schedule!r} with agent program "
                         f"{cfg.env.name!r}: programs run their own loops; allowed: 'async'")
    return ProgramOrchestrator(engine, base.suite, base.formatter, base.settings,
                               max_concurrency=concurrency, quiet=quiet,
                               progress=lambda tag: make_progress(tag, quiet=quiet))


def build_run(cfg: Config, base: Basics, model_path: str, *, world: World = World(),
              train: bool = True) -> Run:
    """The engine and orchestrator serving `model_path`, and with `train` the backend too."""
    from .backends.base import make_backend

    engine = build_engine(cfg.engine, model_path, base.tokenizer, dtype=cfg.model.dtype,
                          device=pick_device(cfg.engine.device, world.local_rank), seed=cfg.seed)
    backend = None
    if train:
        backend = make_backend(cfg, model_path, world=world,
                               device=pick_device(cfg.train.device, world.local_rank))
    return Run(base, model_path, engine, orchestrator(cfg, base, engine, main=world.is_main),
               backend)
