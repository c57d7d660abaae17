"""Train a residual network (or its MLP baseline) classifier, optionally adapting its depth.

Example (with the venv active, `. .venv/bin/activate`, or as `.venv/bin/python scripts/train.py`):
`python scripts/train.py --depth-adapt` trains 15 shared sigmoid layers of width 64 on
scikit-learn's digits and removes converged last layers (the paper's rule). Writes
metrics.jsonl (per epoch), metrics.json, checkpoint.msgpack and figures under --out.
Ctrl-C or SIGTERM (kill, timeout, SLURM) saves the last finished chunk of epochs and exits
with one line (status 130 / 143); --resume continues it. One process writes a folder at a time.

The trunk and training flags are generated from the fields of `resflow.TrunkSpec` and
`resflow.TrainConfig` (type, default, help, choices), so each option is written once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

from . import _common as cli
from ._common import add_data_flags, add_fields, check_data_flags, config_from_args


def build_parser() -> argparse.ArgumentParser:
    from .. import TrainConfig, TrunkSpec

    p = cli.OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_flags(
        p.add_argument_group("data"), seed_help="seed of init, shuffling and data generation/split (default: 0)"
    )
    add_fields(p.add_argument_group("trunk (resflow.TrunkSpec)"), TrunkSpec)
    add_fields(p.add_argument_group("training (resflow.TrainConfig)"), TrainConfig)
    g = p.add_argument_group("output")
    g.add_argument(
        "--out",
        default=None,
        help="output folder (default: runs/<data>-<model>-<weights>-d<depth>-s<seed>-<hash>, "
        "hash: 8 hex digits of the full config and data options)",
    )
    run = g.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in an existing run folder (removes its run files and analysis/ only)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def data_source_of(args) -> dict:
    """The `resflow.load_dataset` arguments of the flags (only the options the data set reads)."""
    return cli.data_source_of(args, args.seed)


def default_out(config, source: dict) -> Path:
    """runs/<data>-<model>-<weights>-d<depth>-s<seed>-<hash>: a readable prefix, and 8 hex digits of
    the sha256 of the full config and the data options, so runs that differ in any option never share
    a folder."""
    spec = config.trunk
    weights = "shared" if spec.shared else "untied"
    blob = json.dumps({"config": dataclasses.asdict(config), "data": source}, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:8]
    return Path(f"runs/{source['name']}-{spec.model}-{weights}-d{spec.depth}-s{source['seed']}-{digest}")


def check_out(parser, out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: a folder another process writes to is refused; an existing run
    folder needs --resume or --overwrite (`clear_run` then removes its run files). Writes nothing."""
    from ..training._fit import CHECKPOINT
    from ..training._runs import LOCK, RunError, is_run_folder, lock_folder

    if (out / LOCK).is_file():  # its writer's lock, if held, says more than the files it wrote so far
        try:
            with lock_folder(out):
                pass
        except (RunError, OSError) as e:
            parser.error(str(e))
    if resume:
        if not (out / CHECKPOINT).is_file():
            parser.error(f"--resume: no checkpoint at {out / CHECKPOINT}")
        return
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    found = is_run_folder(out)
    if found and not overwrite:
        parser.error(
            f"{out} already holds a run ({', '.join(found)}); use --resume to continue it or --overwrite to start again"
        )


def clear_run(out: Path) -> None:
    """--overwrite, under the folder's lock: remove the run's own files and the analyses of its
    old network (analysis/); anything else in the folder stays."""
    import shutil

    from ..training._runs import RUN_FOLDERS, is_run_folder

    for name in is_run_folder(out):
        (out / name).unlink()
    for name in RUN_FOLDERS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)


def stopped(out: Path, e: KeyboardInterrupt) -> int:
    """The one line for a run stopped by Ctrl-C or SIGTERM, and the exit status (128 + signal)."""
    from ..training._checkpoint import CheckpointError, load_checkpoint, stop_status
    from ..training._fit import CHECKPOINT

    name, status = stop_status(e)
    try:
        epoch = load_checkpoint(out / CHECKPOINT)[1]["epoch"]
        saved = f"checkpoint at epoch {epoch} in {out / CHECKPOINT}; continue with --resume"
    except (OSError, CheckpointError, KeyError):
        saved = "no checkpoint yet (nothing to resume)"
    print(f"stopped by {name}: {saved}", file=sys.stderr)
    return status


@cli.one_line_errors
def main(argv=None) -> int:
    from ..training._checkpoint import stop_on_signals, stop_status

    with stop_on_signals():
        try:
            return _main(argv)
        except KeyboardInterrupt as e:  # before the run folder was taken: nothing was written
            name, status = stop_status(e)
            print(f"stopped by {name} before training started", file=sys.stderr)
            return status


def _main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from ..training._checkpoint import prepare_out_dir
    from ..training._fit import fit
    from ..training._runs import RunError, lock_folder

    config, source, ds = _settings(parser, args)
    out = Path(args.out) if args.out else default_out(config, source)
    check_out(parser, out, resume=args.resume, overwrite=args.overwrite)

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(lock_folder(prepare_out_dir(out)))  # until the run ends
        except (RunError, OSError) as e:  # e.g. another writer started since check_out looked
            parser.error(str(e))
        if args.overwrite:
            clear_run(out)
        print(
            f"{args.data}: {ds.meta['n_train']} train / {ds.meta['n_test']} test, dim {ds.meta['dim']}; writing {out}"
        )
        try:
            res = fit(
                ds,
                config,
                key=jax.random.key(args.seed),
                out_dir=out,
                resume=args.resume,
                progress=not args.no_progress,
                data_source=source,
                provenance={"seed": args.seed},
            )
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: fit saved the last finished chunk
            return stopped(out, e)
        except ValueError as e:  # on resume: a checkpoint or data that do not match the flags (raised before
            # anything is written)
            if not args.resume:
                raise
            parser.error(str(e))
    report(res.metrics, config, out)
    return 0


def _settings(parser, args) -> tuple:
    """(config, data source, data set) of the flags, checked before the run folder is made and
    locked; a bad flag or data set exits 2 with one line."""
    from ..training import load_dataset
    from ..training._setup import check_lift

    try:
        check_data_flags(args)
        config = config_from_args(args)
        source = data_source_of(args)
        ds = load_dataset(args.data, seed=args.seed, path=args.data_path, **source["options"])
        check_lift(config, ds.x_train.shape[1])
    except (ValueError, TypeError, FileNotFoundError) as e:  # DataError is a ValueError
        parser.error(str(e))
    return config, source, ds


def report(m: dict, config, out: Path) -> None:
    """The run's summary: accuracies, depth, the cuts of depth adaptation, wall time."""
    print(f"test accuracy {m['test_accuracy']:.4f}  (train {m['train_accuracy']:.4f})")
    print(f"depth {m['initial_depth']} -> {m['depth']}")
    if config.depth_adapt:
        print(
            f"test accuracy before pruning (just before the first cut): {m['accuracy_before_pruning']:.4f}, "
            f"after (final, depth {m['depth']}): {m['accuracy_after_pruning']:.4f}; "
            f"final weights run at depth {m['initial_depth']}: {m['accuracy_final_params_at_max_depth']:.4f}"
        )
        for c in m["cuts"]:
            print(
                f"  epoch {c['epoch']}: depth {c['from']} -> {c['to']}, "
                f"test accuracy {c['test_accuracy_before']:.4f} -> {c['test_accuracy_after']:.4f}"
            )
    print(f"wall time {m['wall_time']:.1f} s; metrics, checkpoint and figures in {out}")


if __name__ == "__main__":
    sys.exit(main())
