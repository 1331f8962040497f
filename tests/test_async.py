"""Asynchronous training: policy versions on turns and groups, the producer's lookahead, the
staleness cap, partial rollouts, and the synchronous loop as the special case k = 0."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from fakes import register_answer_suite
from turnwise.agent.engines import SamplingParams, make_engine
from turnwise.rollouts.producer import Group, GroupProducer
from turnwise.rollouts.trajectory import Trajectory, Turn
from turnwise.trainer.rollout_stage import StepPolicy, take_step
from two_ranks import train_on_two_ranks

# ------------------------------------------------------------------ versions, groups and the cap


def _traj(name: str, *versions: int, reward: float = 0.0) -> Trajectory:
    turns = [Turn(response_ids=[1], response_logprobs=[0.0], version=v) for v in versions]
    return Trajectory(uid="u", traj_id=name, mode="full_trajectory", prompt_ids=[0], turns=turns,
                      outcome_reward=reward)


def test_a_group_is_as_old_as_its_oldest_turn():
    group = Group(7, [_traj("a", 5, 6), _traj("b", 4, 6, 6)], started_version=4)
    assert group.version == 4 and group.age(6) == 2 and group.age(4) == 0
    # A group whose episodes produced no turn is as old as the weights it started with.
    assert Group(8, [_traj("c")], started_version=3).version == 3


class Orchestrated:
    """The producer's view of an orchestrator: `rollout` plays group `g` as the script says;
    each call waits until the test releases it, so the test sees what is in flight."""

    def __init__(self, script) -> None:
        self.script, self.engine = script, SimpleNamespace(version=0)
        self.started: list[int] = []
        self.release = asyncio.Event()

    async def rollout(self, tasks, *, group_size, tag, seed=None, settings=None, branch=True,
                      progress=None):
        index = int(tag[1:])
        self.started.append(index)
        await self.release.wait()
        return [_traj(f"{index}/{j}", *self.script(index), reward=j) for j in range(group_size)]


class Source:
    def task(self, index):
        return index

    def seed(self, index):
        return None


def test_the_producer_plays_k_steps_ahead_and_no_further():
    async def go(lookahead):
        orchestrator = Orchestrated(lambda i: [0])
        producer = GroupProducer(orchestrator, Source(), group_size=2, lookahead=lookahead)
        producer.request(3)
        await asyncio.sleep(0)
        started = list(orchestrator.started)
        orchestrator.release.set()
        groups = [await producer.take() for _ in range(3)]
        await producer.close()
        return started, groups

    started, groups = asyncio.run(go(0))  # synchronous: exactly what was asked
    assert started == [0, 1, 2] and [g.index for g in groups] == [0, 1, 2]
    started, _ = asyncio.run(go(6))  # k = 2 steps of 3 groups ahead
    assert started == list(range(9))


def test_a_resumed_producer_replays_started_groups_and_skips_trained_ones():
    state = {"next": 6, "watermark": 2, "done": [3, 5]}  # 0, 1, 3, 5 trained; 2, 4 in flight
    done, replayed = GroupProducer.resume(state)
    assert done == {0, 1, 3, 5} and replayed == 2

    async def go():
        orchestrator = Orchestrated(lambda i: [0])
        orchestrator.release.set()
        producer = GroupProducer(orchestrator, Source(), group_size=1, lookahead=0, done=done)
        producer.request(3)
        groups = [await producer.take() for _ in range(3)]
        for g in groups:
            producer.consumed(g)
        await producer.close()
        return [g.index for g in groups], producer.state()

    played, after = asyncio.run(go())
    assert played == [2, 4, 6]
    assert after == {"next": 7, "watermark": 7, "done": []}


@pytest.mark.parametrize("stale_groups, kept, dropped", [("drop", [1, 2], 1), ("correct",
                                                                               [0, 1], 0)])
def test_a_group_older_than_the_cap_is_never_trained_on(stale_groups, kept, dropped):
    # At version 5 with max_staleness 1: group 0's oldest turn is version 3 (age 2).
    versions = {0: [3, 5], 1: [4, 5], 2: [5]}

    async def go():
        orchestrator = Orchestrated(lambda i: versions[i])
        orchestrator.release.set()
        producer = GroupProducer(orchestrator, Source(), group_size=2, lookahead=0)
        policy = StepPolicy(groups=2, max_staleness=1, stale_groups=stale_groups)
        taken = await take_step(producer, policy, version=5)
        await producer.close()
        return taken

    taken = asyncio.run(go())
    assert [g.index for g in taken.kept] == kept
    assert taken.metrics["async/stale_dropped"] == dropped
    assert taken.metrics["async/stale_kept"] == 1 - dropped
    ages = [5 - min(versions[i]) for i in kept]
    assert taken.metrics["async/staleness_max"] == max(ages)
    assert taken.metrics["async/staleness_mean"] == pytest.approx(sum(ages) / 2)


# ------------------------------------------------------------------ partial rollouts


def test_weights_loaded_mid_generation_reach_the_request_in_flight(tiny_path, tokenizer,
                                                                   tiny_model):
    engine = make_engine("hf", tiny_path, tokenizer)
    new = {n: p.detach() + 0.01 for n, p in tiny_model.named_parameters()}

    async def go():
        request = asyncio.ensure_future(engine.generate(
            tokenizer.encode("go to countertop 1"), SamplingParams(max_tokens=120,
                                                                   ignore_eos=True, seed=3)))
        while engine.stats["decode_steps"] < 10:  # well under way, far from done
            await asyncio.sleep(0.005)
        await asyncio.to_thread(engine.load_weights, new.items(), 1)
        completion = await request
        after = await engine.generate(tokenizer.encode("look"), SamplingParams(max_tokens=4))
        await engine.close()
        return completion, after

    completion, after = asyncio.run(go())
    versions = completion.token_versions
    assert completion.version == 0 and versions is not None and len(versions) == 120
    switch = versions.index(1)
    assert 10 <= switch < 120 and versions == [0] * switch + [1] * (120 - switch)
    assert after.version == 1 and after.token_versions is None


def test_an_episode_whose_turns_come_from_two_versions(tiny_path, tokenizer, household):
    from turnwise.agent.chat import ChatFormatter
    from turnwise.rollouts.episode import Episode, EpisodeSettings

    engine = make_engine("hf", tiny_path, tokenizer)
    weights = [(n, p.detach().clone()) for n, p in engine.model.named_parameters()]
    settings = EpisodeSettings(mode="full_trajectory", max_turns=3, max_tokens_per_turn=8)

    async def act(prompt, obs, params):
        return await engine.generate(prompt, params)

    async def go():
        episode = Episode(act, household.make(), household.tasks("train", 1, 0)[0],
                          ChatFormatter(tokenizer), settings, uid="g0/0", traj_id="g0/0/0",
                          seed=1)
        await episode.reset()
        await episode.generate()
        await episode.step_env()
        engine.load_weights(weights, version=1)  # the trainer synced between two turns
        await episode.generate()
        trajectory = await episode.close()
        await engine.close()
        return trajectory

    trajectory = asyncio.run(go())
    assert [t.version for t in trajectory.turns] == [0, 1]
    group = Group(0, [trajectory], started_version=0)
    assert group.version == 0 and group.age(1) == 1


# ------------------------------------------------------------------ whole runs


def _cfg(tmp_path, name, *overrides):
    from turnwise.trainer.recipe import load_recipe

    return load_recipe("household_grpo", [
        "train.iterations=3", "sft.episodes=0", "eval.tasks=0", "rollout.tasks_per_iteration=2",
        "rollout.group_size=2", "rollout.max_turns=3", "rollout.max_tokens_per_turn=8",
        "train.threads=1", "log.quiet=true", "log.tensorboard=false", f"log.dir={tmp_path}",
        f"log.run_name={name}", *overrides])


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_async_run_trains_on_capped_corrected_groups(tmp_path):
    from turnwise.trainer.loop import train

    cfg = _cfg(tmp_path, "async", "rollout.max_staleness=2", "train.old_logprobs=recompute",
               "loss.is_correction={mode: mask, cap: 2.0}", "log.save_trajectories=100")
    result = train(cfg, echo=lambda *a: None)
    records = _records(tmp_path / "async")
    assert [r["iteration"] for r in records] == [1, 2, 3]
    assert all(r["async/staleness_max"] <= 2 and r["async/stale_dropped"] == 0 for r in records)
    assert all(0 < r["offpolicy/weight_mean"] and r["train/trained_tokens"] > 0 for r in records)
    assert records[-1]["policy_version"] == 3
    # Every group is trained on once: the saved samples hold each step's groups.
    uids = [json.loads(line)["uid"] for i in (1, 2, 3)
            for line in (tmp_path / "async" / "trajectories" / f"iter_{i:05d}.jsonl").open()]
    groups = {u.split("/")[0] for u in uids}
    assert len(groups) == 6 and len(uids) == 12
    assert result.history[-1]["iteration"] == 3


@pytest.mark.slow
def test_k0_is_the_synchronous_loop(tmp_path):
    """The producer at k = 0 plays and trains exactly what a plain sequential loop does:
    every step's tasks in one rollout call, credit, update, sync."""
    from turnwise.trainer.build import basics, build_run
    from turnwise.trainer.credit_stage import CreditStage
    from turnwise.trainer.loop import seed_everything, train
    from turnwise.trainer.models import resolve_model
    from turnwise.trainer.rollout_stage import trainable

    # An entropy bonus gives every step a gradient, so each step's rollouts depend on the last
    # update.
    moving = ("deterministic=true", "loss.entropy_coef=0.01", "train.lr=1e-3")
    cfg = _cfg(tmp_path, "k0", *moving)
    train(cfg, echo=lambda *a: None)
    logged = _records(tmp_path / "k0")

    reference = _cfg(tmp_path, "ref", *moving)
    seed_everything(reference.seed)
    path = resolve_model(reference.model)
    run = build_run(reference, basics(reference, path), path)
    stage = CreditStage(reference.credit, reference.kl, backend=run.backend,
                        tokenizer=run.basics.tokenizer, pad_id=run.basics.pad_id,
                        temperature=reference.rollout.temperature, proximal="rollout",
                        correction=None)
    seed_everything(reference.seed + 1)

    async def sequential():
        out = []
        for it in range(3):
            tasks = run.basics.suite.tasks("train", 2, reference.seed * 100_003 + it)
            seed = ((reference.seed * 100_003 + it) * 1024) * 100_000
            trajs = await run.orchestrator.rollout(tasks, group_size=2, tag=f"it{it}", seed=seed)
            credited = stage([t for t in trajs if trainable(t)])
            metrics = run.backend.update(credited.batch)
            run.engine.load_weights(run.backend.state_dict_for_engine(), version=it + 1)
            out.append((trajs, metrics))
        await run.close()
        return out

    for record, (trajs, metrics) in zip(logged, asyncio.run(sequential())):
        assert record["rollout/response_tokens"] == sum(
            t.num_response_tokens() for t in trajs) / len(trajs)
        assert record["train/pg_loss"] == metrics["pg_loss"]
        assert record["train/grad_norm"] == metrics["grad_norm"] > 0
        assert record["train/entropy"] == metrics["entropy"]


@pytest.mark.slow
def test_a_killed_async_run_resumes_without_training_a_group_twice(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    cli = [sys.executable, "-m", "turnwise.trainer.cli", "train", "household_grpo",
           "train.iterations=4", "sft.episodes=0", "eval.tasks=0",
           "rollout.tasks_per_iteration=2", "rollout.group_size=2", "rollout.max_turns=3",
           "rollout.max_tokens_per_turn=8", "train.threads=1", "checkpoint.every=1",
           "rollout.max_staleness=2", "train.old_logprobs=recompute",
           "loss.is_correction={mode: mask}", "log.save_trajectories=100", "log.quiet=true",
           f"log.dir={tmp_path}", "log.run_name=cut"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    checkpoint = tmp_path / "cut" / "checkpoints" / "iter_000002"
    deadline = time.time() + 600
    while not (checkpoint / "meta.json").exists() and killed.poll() is None \
            and time.time() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    state = json.loads((checkpoint / "state_rank0.json").read_text())
    done, replayed = GroupProducer.resume(state)

    def trained(iteration):
        path = tmp_path / "cut" / "trajectories" / f"iter_{iteration:05d}.jsonl"
        return {int(json.loads(line)["uid"].split("/")[0][1:]) for line in path.open()}

    before = trained(1) | trained(2)
    assert done == before and len(before) == 4  # the checkpoint knows exactly what was trained
    resumed = subprocess.run(cli + ["resume=auto"], capture_output=True, text=True, timeout=600,
                             check=False, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = _records(tmp_path / "cut")
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]
    # Groups started but not trained when the run was killed are played again, and counted.
    assert replayed >= 1 and records[2]["async/replayed_groups"] == replayed
    after = trained(3) | trained(4)
    assert len(after) == 4 and not after & before  # no group trained twice


@pytest.mark.slow
@pytest.mark.deepspeed
def test_two_deepspeed_ranks_train_asynchronously(tmp_path):
    train_on_two_ranks(["household_grpo", "train.backend=deepspeed",
                        "deepspeed.zero_stage=2", "train.iterations=3", "sft.episodes=0", "eval.tasks=0",
                        "rollout.tasks_per_iteration=2", "rollout.group_size=2", "rollout.max_turns=3",
                        "rollout.max_tokens_per_turn=8", "rollout.max_staleness=1", "checkpoint.every=1",
                        "train.old_logprobs=recompute", "loss.is_correction={mode: mask}", "train.threads=1",
                        "log.quiet=true", f"log.dir={tmp_path}", "log.run_name=r"])
    records = _records(tmp_path / "r")
    # Each rank plays and trains its own task (2 episodes); the log sums them, once, on rank 0.
    assert [r["iteration"] for r in records] == [1, 2, 3]
    assert all(r["rollout/episodes"] == 4 and r["async/staleness_max"] <= 1 for r in records)
    assert records[-1]["policy_version"] == 3
    assert (tmp_path / "r" / "checkpoints" / "iter_000003" / "state_rank1.json").exists()


@pytest.mark.slow
def test_the_engine_sleeps_through_each_synchronous_update(tmp_path, monkeypatch):
    from turnwise.agent.engines.hf import HFEngine
    from turnwise.trainer.loop import train
    from turnwise.trainer.recipe import RecipeError

    calls = []
    for name in ("sleep", "wake"):
        real = getattr(HFEngine, name)

        async def logged(self, _real=real, _name=name):
            calls.append(_name)
            return await _real(self)

        monkeypatch.setattr(HFEngine, name, logged)
    train(_cfg(tmp_path, "slept", "engine.sleep_during_update=true", "deterministic=true"),
          echo=lambda *a: None)
    assert calls == ["sleep", "wake"] * 3
    train(_cfg(tmp_path, "awake", "deterministic=true"), echo=lambda *a: None)
    for slept, awake in zip(_records(tmp_path / "slept"), _records(tmp_path / "awake")):
        assert slept["train/pg_loss"] == awake["train/pg_loss"]
        assert slept["rollout/response_tokens"] == awake["rollout/response_tokens"]
    with pytest.raises(RecipeError, match="sleep_during_update=true with rollout.max_staleness"):
        _cfg(tmp_path, "x", "engine.sleep_during_update=true", "rollout.max_staleness=1")


def test_the_generation_clock_counts_time_with_nothing_in_flight():
    from turnwise.rollouts.clock import GenerationClock

    now = [0.0]
    clock = GenerationClock(now=lambda: now[0])
    now[0] = 2.0  # idle 0 -> 2
    with clock.generating():
        now[0] = 3.0
        with clock.generating():  # overlapping requests: busy until both end
            now[0] = 5.0
        now[0] = 6.0
    now[0] = 6.5  # idle again from 6
    assert clock.idle_seconds() == pytest.approx(2.5) and clock.in_flight == 0


def test_the_suite_source_gives_each_rank_its_share_of_each_step():
    from turnwise.envs import make_suite
    from turnwise.trainer.dist import World
    from turnwise.trainer.rollout_stage import SuiteSource

    suite = make_suite("household", max_steps=8)
    step = [t.id for t in suite.tasks("train", 4, 7 * 100_003 + 1)]  # seed 7, slot 1
    for rank in (0, 1):
        source = SuiteSource(suite, "train", tasks_per_step=4, world=World(rank=rank, size=2),
                             seed=7, group_size=3, seeded=True)
        # Two groups per rank and step: groups 2 and 3 are slot 1, this rank's tasks of it.
        assert [source.task(g).id for g in (2, 3)] == step[rank::2]
        base = ((7 * 100_003 + 1) * 1024 + rank) * 100_000
        assert [source.seed(g) for g in (2, 3)] == [base, base + 3]
    unseeded = SuiteSource(suite, "train", tasks_per_step=4, world=World(), seed=7, group_size=3,
                           seeded=False)
    assert unseeded.seed(5) is None


def test_engine_faults_are_reported_per_step():
    """engine/<count> is what the engine counted since the last step; engines without the
    counters report nothing."""
    from types import SimpleNamespace

    from turnwise.trainer.loop import Trainer

    stats = {"retries": 3, "taken_out": 1, "readmitted": 0, "requests": 50}
    trainer = SimpleNamespace(run=SimpleNamespace(engine=SimpleNamespace(stats=stats)),
                              engine_faults={})
    Trainer._engine_faults(trainer)  # what happened before training
    stats.update(retries=7, readmitted=1, requests=90)
    assert Trainer._engine_faults(trainer) == {"engine/retries": 4.0, "engine/taken_out": 0.0,
                                               "engine/readmitted": 1.0}
    assert Trainer._engine_faults(trainer) == {"engine/retries": 0.0, "engine/taken_out": 0.0,
                                               "engine/readmitted": 0.0}
    trainer.run.engine = SimpleNamespace(stats={"prefills": 4})  # the hf engine's
    assert Trainer._engine_faults(trainer) == {}


COMBINATIONS = {
    "igpo": ("search_igpo", []),  # its scoring pass, on the trainer's thread
    "arpo": ("search_arpo", ["rollout.arpo.initial=1"]),  # branched episodes: a group is a tree
    "full_trajectory": ("household_gigpo", ["rollout.mode=full_trajectory"]),
    # AReaL's proximal approximation: no trainer pass, the loss interpolates and corrects
    "loglinear": ("household_gigpo", ["train.old_logprobs=loglinear"]),
    # Rewards that differ within a group even for an untrained policy, so some groups are kept.
    "dapo re-rolls": ("household_grpo", ["env.name=household_answers",
                                         "credit.dynamic_sampling={max_rolls: 4}"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("what", list(COMBINATIONS))
def test_what_works_synchronously_works_asynchronously(what, tmp_path):
    """Estimators with passes and trees of their own, the other sample mode and DAPO's re-rolls
    train with k = 1 and the decoupled correction: two steps, groups no older than the cap."""
    from turnwise.trainer.loop import train
    from turnwise.trainer.recipe import load_recipe
    from turnwise.trainer.report.metric_names import undocumented

    register_answer_suite()
    recipe, overrides = COMBINATIONS[what]
    cfg = load_recipe(recipe, [
        "train.iterations=2", "sft.episodes=0", "eval.tasks=0", "rollout.tasks_per_iteration=2",
        "rollout.group_size=2", "rollout.max_turns=2", "rollout.max_tokens_per_turn=8",
        "train.threads=1", "log.quiet=true", "log.tensorboard=false", "log.plot_every=0",
        f"log.dir={tmp_path}", "log.run_name=r", "rollout.max_staleness=1",
        "train.old_logprobs=recompute", "loss.is_correction={mode: truncate, cap: 2.0}",
        *overrides])
    train(cfg, echo=lambda *a: None)
    records = _records(tmp_path / "r")
    assert [r["iteration"] for r in records if r["iteration"] >= 1] == [1, 2]
    assert all(r["async/staleness_max"] <= 1 for r in records if r["iteration"] >= 1)
    assert records[-1]["policy_version"] == 2
    own = {"igpo": "igpo/probes", "dapo re-rolls": "dynamic_sampling/kept_groups",
           "arpo": "rollout/response_entropy"}.get(what)
    assert own is None or all(records[i][own] > 0 for i in (-1, -2))  # its stage ran each step
    assert undocumented({key for r in records for key in r}) == []
    if what == "loglinear":  # the loss formed the weights, each step
        assert all(0 < records[i]["offpolicy/weight_mean"] for i in (-1, -2))
        assert all(0 <= records[i]["offpolicy/alpha_mean"] < 1 for i in (-1, -2))
