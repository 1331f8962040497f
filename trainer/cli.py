"""`turnwise train RECIPE [key=value ...]` and friends (`eval`, `serve`, `config`, `view`,
`plot`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .console import quiet_libraries
from .recipe import RecipeError, bundled_recipes, import_modules, load_recipe
from .report.commands import add_report_commands, run_report_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="turnwise", description=__doc__)
    # The `deepspeed` launcher passes --local_rank=N; the rank is read from LOCAL_RANK instead.
    parser.add_argument("--local_rank", type=int, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    train_cmd = commands.add_parser("train", help="train an agent with a recipe")
    train_cmd.add_argument("recipe", help=f"a YAML file or a bundled recipe: {bundled_recipes()}")
    train_cmd.add_argument("overrides", nargs="*", help="key=value, e.g. preset=cpu-tiny train.iterations=5")

    show_cmd = commands.add_parser("config", help="print the resolved config of a recipe")
    show_cmd.add_argument("recipe")
    show_cmd.add_argument("overrides", nargs="*")

    eval_cmd = commands.add_parser("eval", help="evaluate a recipe's model or a run's final policy")
    eval_cmd.add_argument("recipe", metavar="RECIPE_OR_RUN", help="a recipe, or a run folder")
    eval_cmd.add_argument("overrides", nargs="*", help="key=value, as for train")
    eval_cmd.add_argument("--split", help="task split (default: the recipe's eval.split)")
    eval_cmd.add_argument("--tasks", type=int, help="number of tasks (default: eval.tasks)")
    eval_cmd.add_argument("--samples", type=int, default=1, help="episodes per task, for pass@k")
    eval_cmd.add_argument("--sampled", action="store_true",
                          help="sample at rollout.temperature instead of greedy decoding")
    eval_cmd.add_argument("--task-seed", type=int,
                          help="seed of the task draw (default: eval.task_seed, else the run's "
                               "seed + 1: the tasks the training loop evaluates); one value gives "
                               "every run the same tasks")
    eval_cmd.add_argument("--policy", metavar="MODEL_DIR",
                          help="evaluate this model folder instead of the recipe's model or the "
                               "run's final policy (e.g. the SFT start: sft_policy in summary.json)")
    eval_cmd.add_argument("--out", help="JSON report path (default: in the run folder or log.dir)")

    serve_cmd = commands.add_parser(
        "serve", help="start the vLLM servers a recipe's engine.kind=server drives")
    serve_cmd.add_argument("recipe")
    serve_cmd.add_argument("overrides", nargs="*", help="key=value, as for train")
    serve_cmd.add_argument("--servers", type=int, default=1,
                           help="how many (they split the GPUs, or the CPU cores)")
    serve_cmd.add_argument("--port", type=int, default=8000,
                           help="port of the first server; server i listens on PORT + i")
    serve_cmd.add_argument("--host", default="127.0.0.1",
                           help="address to listen on (0.0.0.0 for trainers on other hosts)")
    serve_cmd.add_argument("--model", metavar="MODEL_DIR",
                           help="serve this model folder instead of the recipe's model")
    serve_cmd.add_argument("--python", help="a Python with vLLM (default: this one if it has "
                                            "vLLM, else ./.venv-vllm/bin/python)")
    serve_cmd.add_argument("--kv-cache-gib", type=float,
                           help="KV cache per server (default on CPU: 1; GPUs: vLLM sizes it)")
    serve_cmd.add_argument("--gpus", help="GPU ids the servers share out, e.g. 4,5,6,7 "
                                          "(default: all); leave the trainer's GPUs out")
    serve_cmd.add_argument("--gpu-memory-utilization", type=float,
                           help="share of each GPU's memory a server may take (vLLM's default "
                                "0.9; lower it where the trainer shares the GPU)")

    for command in (train_cmd, show_cmd, eval_cmd, serve_cmd):
        command.add_argument("--import", dest="imports", action="append", default=[],
                             metavar="MODULE",
                             help="import this Python module first, so the suites, tools or "
                                  "estimators it registers are known (repeatable; recipes "
                                  "list them under imports:)")

    add_report_commands(commands)  # view, plot

    args, extra = parser.parse_known_args(argv)
    if args.command in ("train", "eval", "serve"):
        quiet_libraries()
    # key=value overrides may come on either side of a command's options.
    if extra and (not hasattr(args, "overrides") or any(a.startswith("-") for a in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    if args.command == "eval":
        from .evaluate import resolve_source, run_eval

        try:
            import_modules(args.imports, folders=[Path.cwd()], source="--import")
            cfg, policy = resolve_source(args.recipe, args.overrides, policy=args.policy)
            run_eval(cfg, policy=policy, split=args.split, tasks=args.tasks,
                     samples=args.samples, sampled=args.sampled, out=args.out,
                     source=args.recipe, task_seed=args.task_seed)
        except RecipeError as exc:
            return _error(exc)
        return 0
    if args.command in ("view", "plot"):
        return run_report_command(args)
    try:
        cfg = load_recipe(args.recipe, args.overrides, imports=args.imports)
    except RecipeError as exc:
        return _error(exc)
    if args.command == "config":
        import yaml

        print(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
        return 0
    if args.command == "serve":
        from .serve import serve

        try:
            return serve(cfg, servers=args.servers, port=args.port, host=args.host,
                         model=args.model, python=args.python, kv_cache_gib=args.kv_cache_gib,
                         gpus=args.gpus, gpu_memory_utilization=args.gpu_memory_utilization)
        except (ValueError, RuntimeError, TimeoutError) as exc:
            return _error(exc)
    from .loop import train

    try:
        train(cfg)  # refuses an engine that cannot train before anything starts
    except RecipeError as exc:  # found at start (a model that cannot load): no traceback
        return _error(exc)
    return 0


def _error(exc: Exception) -> int:
    """Print `exc` as one line and return the exit status 2; under torchrun or deepspeed only
    rank 0 prints (every rank stops the same way)."""
    if os.environ.get("RANK", "0") == "0":
        print(f"error: {exc}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
