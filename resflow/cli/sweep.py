"""Train many runs at once: seeds × a grid of options (`resflow.sweep`), then table and figures.

Example (with the venv active, `. .venv/bin/activate`):
`python scripts/sweep.py --data circles --width 3 --depth-adapt --seeds 0-15 --grid lr=1e-2,3e-3 w_std=1,2`
trains 16 seeds in each of the 4 grid cells. Runs whose shapes agree (numeric options such as
lr, h, w_std, depth_tol, weight_decay) train as one vmapped program, sharded over the local
devices; options that change shapes (width, depth, model, ...) make separate programs.
Writes, under --out: sweep.json (one row per run: options, seed, final depth, accuracies,
time; and each run's per-epoch history), accuracy.png and depth.png (the spread over seeds per
grid cell), depth_histories.png (every run's depth per epoch), runs/ (one run folder per run,
as scripts/train.py writes it, loaded by `resflow.load_run`), and while it trains
sweep-options.json and checkpoints/ (each group of runs' state, as scripts/train.py's
checkpoint: every --checkpoint-every epochs or --checkpoint-seconds, and on Ctrl-C or
SIGTERM, which exit with one line). --resume continues a stopped sweep: finished groups
are reloaded, unfinished ones continue from their last chunk.

The other flags set the options shared by every run; they are generated from
`resflow.TrunkSpec` and `resflow.TrainConfig`, as in scripts/train.py. Each run's key is
`jax.random.key(seed)`, the key `scripts/train.py --seed SEED` uses; the data set is the same
for all runs (--data-seed).

Several hosts: run this same command on every host with --coordinator HOST:PORT
--num-processes N --process-id I (or RESFLOW_COORDINATOR / RESFLOW_NUM_PROCESSES /
RESFLOW_PROCESS_ID, or --distributed under SLURM's srun); each process trains its share of
the seeds on its own devices and process 0 writes the results (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import hashlib
import itertools
import json
import shutil
import sys
from pathlib import Path

from . import _common as cli

OUTPUTS = ("sweep.json", "accuracy.png", "depth.png", "depth_histories.png")
OPTIONS, CHECKPOINTS, RUNS = "sweep-options.json", "checkpoints", "runs"


MAX_SEEDS = 10**6
"""The most seeds --seeds may list: a sweep trains every run of a group at once and keeps every
run's history (`resflow.sweep` refuses, before training, what does not fit in memory)."""


def parse_seeds(text: str) -> list[int]:
    """``"0-7,10"`` → [0, 1, …, 7, 10]: comma-separated integers in [0, 2**32) (the range of
    ``jax.random.key``) and inclusive ranges ``a-b`` (a ≤ b), no repeats, at most `MAX_SEEDS`
    in all (counted before the list is built).

    **Raises:** `ValueError` naming the bad part.
    """
    from ..training._sweep import SEED_LIMIT

    ranges = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"--seeds: {part.strip()!r} is not a seed or a range a-b of non-negative integers")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise ValueError(f"--seeds: range {part.strip()!r} ends before it starts")
        if last >= SEED_LIMIT:
            raise ValueError(
                f"--seeds: {part.strip()!r}: seeds must be < 2**32 = {SEED_LIMIT} (jax.random.key's range)"
            )
        ranges.append(range(first, last + 1))
    count = sum(len(r) for r in ranges)
    if count > MAX_SEEDS:
        raise ValueError(f"--seeds: {text!r} lists {count} seeds, more than the {MAX_SEEDS} a sweep can hold")
    seeds = [s for r in ranges for s in r]
    if len(set(seeds)) < len(seeds):
        repeated = sorted({s for s, n in collections.Counter(seeds).items() if n > 1})
        raise ValueError(f"--seeds: seed(s) {repeated} given twice")
    return seeds


def _parse_value(name: str, kind: type, text: str):
    """One grid value of option `name` with the option's type (``none`` for an optional one)."""
    if text.lower() == "none":
        return None
    if kind is bool:
        table = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if text.lower() not in table:
            raise ValueError(f"--grid {name}: {text!r} is not a boolean (true/false)")
        return table[text.lower()]
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"--grid {name}: {text!r} is not a valid {kind.__name__}") from None


def parse_grid(tokens: list[str], config) -> dict[str, list]:
    """``["lr=1e-2,3e-3", "w_std=1,2"]`` → ``{"lr": [0.01, 0.003], "w_std": [1.0, 2.0]}``.

    Names are fields of `resflow.TrunkSpec` / `resflow.TrainConfig` (``w-std`` = ``w_std``);
    values are parsed with the field's type and each checked by ``config.replace(...).validate()``.

    **Raises:** `ValueError` naming the token and what was expected.
    """
    from .. import TrainConfig, TrunkSpec

    fields = cli.option_fields(TrunkSpec) | cli.option_fields(TrainConfig)
    grid = {}
    for token in tokens:
        name, eq, values = token.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or not values.strip():
            raise ValueError(f"--grid: {token!r} is not NAME=VALUE[,VALUE...]")
        if name not in fields:
            raise ValueError(f"--grid: unknown option {name!r}; options are the fields of TrunkSpec and TrainConfig")
        if name in grid:
            raise ValueError(f"--grid: option {name!r} given twice")
        parsed = [_parse_value(name, fields[name][0], v.strip()) for v in values.split(",")]
        if len(set(parsed)) < len(parsed):
            raise ValueError(f"--grid {name}: a value is repeated in {values!r}")
        for value in parsed:
            try:
                config.replace(**{name: value}).validate()
            except (ValueError, TypeError) as e:
                raise ValueError(f"--grid {name}={value}: {e}") from None
        grid[name] = parsed
    return grid


def build_parser() -> argparse.ArgumentParser:
    from .. import TrainConfig, TrunkSpec

    p = cli.OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("sweep")
    g.add_argument("--seeds", default="0-7", help="run seeds: integers and ranges, e.g. 0-7,10 (default: 0-7)")
    g.add_argument(
        "--grid",
        nargs="*",
        default=[],
        metavar="NAME=V1,V2",
        help="options to vary, each over a comma-separated list (e.g. lr=1e-2,3e-3 w_std=1,2); "
        "every combination × every seed is a run (default: none)",
    )
    g = p.add_argument_group("data")
    cli.add_data_flags(g, seed_help=None)
    g.add_argument(
        "--data-seed", type=int, default=0, help="seed of data generation/split, the same for every run (default: 0)"
    )
    cli.add_fields(p.add_argument_group("trunk (resflow.TrunkSpec)"), TrunkSpec)
    cli.add_fields(p.add_argument_group("training (resflow.TrainConfig)"), TrainConfig)
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="output folder (default: runs/sweep-<data>-<hash of every option>)")
    run = g.add_mutually_exclusive_group()
    run.add_argument(
        "--overwrite", action="store_true", help="write into an existing non-empty --out (its checkpoints are removed)"
    )
    run.add_argument("--resume", action="store_true", help="continue the stopped sweep in --out (the same flags)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("several hosts (jax.distributed; default: RESFLOW_* environment or cluster detection)")
    g.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process job even without the flags below (settings from RESFLOW_* or the "
        "cluster scheduler, e.g. SLURM under srun); implied by any of them",
    )
    g.add_argument("--coordinator", default=None, help="HOST:PORT of process 0, the same on every host")
    g.add_argument("--num-processes", type=int, default=None, help="number of processes (hosts) taking part")
    g.add_argument("--process-id", type=int, default=None, help="this process's index, 0 .. num-processes - 1")
    return p


def default_out(config, source: dict, seeds: list[int], grid: dict) -> Path:
    """runs/sweep-<data>-<8 hex digits of the sha256 of every option, the seeds and the grid>."""
    blob = json.dumps(
        {"config": dataclasses.asdict(config), "data": source, "seeds": seeds, "grid": grid}, sort_keys=True
    )
    return Path(f"runs/sweep-{source['name']}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}")


def check_out(parser, out: Path, *, overwrite: bool, resume: bool = False, options: dict | None = None) -> None:
    """Refuse a file, or a non-empty folder without --overwrite or --resume (no sweep overwrites
    another by accident); --resume needs the sweep-options.json of a sweep with the same `options`."""
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    if resume:
        try:
            saved = json.loads((out / OPTIONS).read_text())
        except (OSError, ValueError) as e:
            parser.error(f"--resume: no sweep to continue in {out} ({out / OPTIONS}: {e})")
        if saved != options:
            diff = sorted(k for k in set(saved) | set(options or {}) if saved.get(k) != (options or {}).get(k))
            parser.error(
                f"--resume: {out / OPTIONS} holds another sweep (different {', '.join(diff)}); give the same flags"
            )
        return
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        parser.error(f"--out {out} is not empty; use --overwrite to write into it (or --resume to continue it)")


def _plain(obj):
    """`obj` with numpy/jax scalars and arrays as Python numbers and lists (JSON-able)."""
    return json.loads(json.dumps(obj, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x)))


def depth_key(rows: list[dict]) -> str:
    """The row key holding a run's final depth."""
    return next(k for k in ("final_depth", "depth_after", "depth") if k in rows[0])


def merge(parts: list[dict], seeds: list[int], grid: dict) -> tuple[list[dict], list[list[dict]]]:
    """Rows and histories of every process in one order: grid cell (the grid's order), then seed."""
    runs = [(row, hist) for part in parts for row, hist in zip(part["rows"], part["histories"], strict=True)]

    def order(run):
        row = run[0]
        return tuple(grid[name].index(row[name]) for name in grid), seeds.index(row["seed"])

    runs.sort(key=order)
    return [r for r, _ in runs], [h for _, h in runs]


def write_outputs(out: Path, record: dict, options: list[str]) -> None:
    """sweep.json and the three figures."""
    from ..plots import plot_sweep_depth_histories, plot_sweep_distribution

    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(record, indent=1))
    rows, depth = record["rows"], depth_key(record["rows"])
    plot_sweep_distribution(rows, "test_accuracy", options=options, save=out / "accuracy.png")
    plot_sweep_distribution(rows, depth, options=options, save=out / "depth.png")
    plot_sweep_depth_histories(
        record["histories"],
        rows,
        options=options,
        max_depth=record["config"]["trunk"]["depth"],
        save=out / "depth_histories.png",
    )


def print_table(rows: list[dict], options: list[str]) -> None:
    """One line per grid cell: runs, test accuracy (mean, min–max), final depth (min–max)."""
    from ..plots.sweep import sweep_cells

    labels, cells = sweep_cells(rows, options)
    depth = depth_key(rows)
    for k, label in enumerate(labels):
        acc = [r["test_accuracy"] for r, c in zip(rows, cells, strict=True) if c == k]
        dep = [r[depth] for r, c in zip(rows, cells, strict=True) if c == k]
        print(
            f"{label:<32} {len(acc):>3} runs  test accuracy mean {sum(acc) / len(acc):.4f} "
            f"(min {min(acc):.4f}, max {max(acc):.4f})  final depth {min(dep)}-{max(dep)}"
        )


def start_cluster(parser, args):
    """`resflow.training._distributed.initialize` when flags or RESFLOW_* variables give the settings, or
    --distributed asks for the cluster's own (JAX's detection); else None (one process)."""
    from ..training import _distributed as distributed

    try:
        settings = distributed.resolve(args.coordinator, args.num_processes, args.process_id)
        if settings is None and not args.distributed:
            return None
        return distributed.initialize(**(settings or {}))
    except ValueError as e:
        parser.error(str(e))


@cli.one_line_errors
def main(argv=None) -> int:
    from ..training._checkpoint import stop_on_signals, stop_status

    with stop_on_signals(), contextlib.ExitStack() as held:
        try:
            return _main(argv, held)
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM before or after the training
            name, status = stop_status(e)
            print(f"stopped by {name}", file=sys.stderr)
            return status


def _main(argv, held: contextlib.ExitStack) -> int:
    """`main`; `held` keeps --out's lock until the command ends."""
    parser = build_parser()
    args = parser.parse_args(argv)

    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    config, seeds, grid, source = _settings(parser, args)
    out = Path(args.out) if args.out else default_out(config, source, seeds, grid)
    options = _plain({"data": source, "config": dataclasses.asdict(config), "seeds": seeds, "grid": grid})
    # every process, before any writes
    check_out(parser, out, overwrite=args.overwrite, resume=args.resume, options=options)
    cluster = start_cluster(parser, args)

    from ..training import _distributed as distributed

    data = _load_data(parser, args, source)
    n, i = (cluster.num_processes, cluster.process_id) if cluster else (1, 0)
    _take_out(parser, args, out, options, held)
    if distributed.is_main():
        runs = len(seeds) * len(list(itertools.product(*grid.values())))
        where = f" on {n} processes" if n > 1 else ""
        print(
            f"{args.data}: {data.meta['n_train']} train / {data.meta['n_test']} test; {runs} runs{where}; writing {out}"
        )
    # Each process trains its share of the seeds on its own devices, and checkpoints its own
    # groups (a resume needs the same number of processes).
    share = f"process{i}-of-{n}" if n > 1 else ""
    part = _train_share(parser, args, data, config, grid, mine=seeds[i::n], out=out, share=share, source=source)
    if isinstance(part, int):  # stopped by a signal: its exit status
        return part
    parts = distributed.gather_objects(_plain(part))
    if not distributed.is_main():
        return 0
    rows, histories = merge(parts, seeds, grid)
    record = {"data": source, "config": dataclasses.asdict(config), "seeds": seeds, "grid": grid}
    record |= {"processes": n, "rows": rows, "histories": histories}
    write_outputs(out, _plain(record), list(grid))
    print_table(rows, list(grid))
    print(f"table and histories in {out / 'sweep.json'}; figures {', '.join(OUTPUTS[1:])}")
    return 0


def _settings(parser, args) -> tuple:
    """(config, seeds, grid, data source) of the flags; a bad one exits 2 with one line."""
    try:
        cli.check_data_flags(args)
        config = cli.config_from_args(args)
        seeds = parse_seeds(args.seeds)
        grid = parse_grid(args.grid, config)
        source = cli.data_source_of(args, args.data_seed)
    except (ValueError, TypeError) as e:
        parser.error(str(e))
    return config, seeds, grid, source


def _load_data(parser, args, source: dict):
    """The data set every run trains on; one that cannot be loaded exits 2 with one line."""
    from ..training import load_dataset

    try:
        return load_dataset(args.data, seed=args.data_seed, path=args.data_path, **source["options"])
    except (ValueError, TypeError, FileNotFoundError) as e:
        parser.error(str(e))


def _take_out(parser, args, out: Path, options: dict, held: contextlib.ExitStack) -> None:
    """Make --out on every process (so that all stop alike; only now, so that a refused flag or
    data set leaves no folder); then process 0 locks it (held until the command ends), removes
    old checkpoints on --overwrite and writes sweep-options.json. Two barriers: writes start once
    every process has checked --out, and new checkpoints once the old ones are gone."""
    from ..training import _distributed as distributed
    from ..training._checkpoint import prepare_out_dir
    from ..training._runs import lock_folder, write_json

    prepare_out_dir(out)
    distributed.gather_objects(None)  # every process has checked --out: writes may start
    if distributed.is_main():
        try:
            held.enter_context(lock_folder(prepare_out_dir(out)))
        except (ValueError, OSError) as e:  # RunError (another writer) and OutputError are ValueErrors
            parser.error(str(e))
        if args.overwrite:
            shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
            shutil.rmtree(out / RUNS, ignore_errors=True)
        if not args.resume:
            write_json(out / OPTIONS, options)
    distributed.gather_objects(None)  # the old checkpoints are gone before any new one is written


def _train_share(
    parser, args, data, config, grid: dict, *, mine: list[int], out: Path, share: str, source: dict
) -> dict | int:
    """This process's rows and histories (`resflow.sweep` over its seeds `mine`, checkpoints in
    OUT/checkpoints/`share`; empty when it has no seed, as it still takes part in the gather), or
    the exit status when a signal stopped it."""
    from .. import sweep
    from ..training import _distributed as distributed
    from ..training._checkpoint import stop_status

    if not mine:
        return {"rows": [], "histories": []}
    try:
        result = sweep(
            data,
            config,
            seeds=mine,
            grid=grid or None,
            progress=not args.no_progress and distributed.is_main(),
            out_dir=out / CHECKPOINTS / share,
            runs_dir=out / RUNS,
            resume=args.resume,
            data_source=source,
        )
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the finished chunks are saved
        name, status = stop_status(e)
        print(
            f"stopped by {name}: the finished runs and chunks are in {out / CHECKPOINTS}; continue with --resume",
            file=sys.stderr,
        )
        return status
    except (ValueError, TypeError) as e:  # e.g. a grid the library cannot group, a non-finite loss
        parser.error(str(e))
    return {"rows": result.table(), "histories": [run.history for run in result]}


if __name__ == "__main__":
    sys.exit(main())
