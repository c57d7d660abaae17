"""Train a residual network (or its MLP baseline) classifier, optionally adapting its depth.

Example (with the venv active, `. .venv/bin/activate`, or as `.venv/bin/python scripts/train.py`):
`python scripts/train.py --depth-adapt` trains 15 shared sigmoid layers of width 64 on
scikit-learn's digits and removes converged last layers (the paper's rule). Writes
metrics.jsonl (per epoch), metrics.json, checkpoint.msgpack and figures under --out.

The trunk and training flags are generated from the fields of `resflow.TrunkSpec` and
`resflow.TrainConfig` (type, default, help, choices), so each option is written once.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

# Per-data-set defaults where one value does not fit all (see docs/training.md).
PER_DATASET = {
    "epochs": {"digits": 40, "circles": 300, "mnist1d": 60, "mnist": 15, "fashion-mnist": 15},
    "batch_size": {"digits": 64, "circles": 50, "mnist1d": 100, "mnist": 128, "fashion-mnist": 128},
    "lr": {"digits": 3e-3, "circles": 1e-2, "mnist1d": 3e-3, "mnist": 1e-3, "fashion-mnist": 1e-3},
    "depth_warmup": {"digits": 5, "circles": 100, "mnist1d": 10, "mnist": 3, "fashion-mnist": 3},
    # circles, width 3: w_std 2 reached >= 99.9 % test accuracy for 6 of 8 seeds, w_std 1 for 4 of 8.
    "w_std": {"digits": 1.0, "circles": 2.0, "mnist1d": 1.0, "mnist": 1.0, "fashion-mnist": 1.0},
}


def _scalar_type(hint):
    """int / float / str / bool of a field's type hint (``int | None`` → int)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def add_fields(group, cls) -> list[str]:
    """One flag per field of dataclass `cls` (``--batch-size`` for ``batch_size``); returns the
    field names. Booleans get ``--x / --no-x``; fields in `PER_DATASET` default to None."""
    hints = typing.get_type_hints(cls)
    names = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        kind, flag = _scalar_type(hints[f.name]), "--" + f.name.replace("_", "-")
        default = None if f.name in PER_DATASET else f.default
        shown = f"per data set {PER_DATASET[f.name]}" if f.name in PER_DATASET else default
        text = f"{f.metadata['help']} (default: {shown})".replace("%", "%%")
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            group.add_argument(flag, type=kind, default=default, choices=f.metadata["choices"], help=text)
        names.append(f.name)
    return names


def build_parser() -> argparse.ArgumentParser:
    from resflow import TrainConfig, TrunkSpec
    from resflow.data import DATASETS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", choices=DATASETS, default="digits", help="data set (default: digits, ships with sklearn)")
    g.add_argument(
        "--data-path", default=None, help="mnist/fashion-mnist: folder with the 4 IDX files (.gz ok) or .npz"
    )
    g.add_argument("--samples", type=int, default=5000, help="mnist1d: generated samples, 80%% train (default: 5000)")
    g.add_argument("--noise", type=float, default=0.0, help="circles: std of Gaussian noise on the points (default: 0)")
    g.add_argument("--seed", type=int, default=0, help="seed of init, shuffling and data generation/split (default: 0)")
    add_fields(p.add_argument_group("trunk (resflow.TrunkSpec)"), TrunkSpec)
    add_fields(p.add_argument_group("training (resflow.TrainConfig)"), TrainConfig)
    g = p.add_argument_group("output")
    g.add_argument(
        "--out", default=None, help="output folder (default: runs/<data>-<model>-<weights>-d<depth>-s<seed>)"
    )
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args):
    """The `TrainConfig` of parsed flags (None per-data-set options filled for ``args.data``)."""
    from resflow import TrainConfig, TrunkSpec

    names = [f.name for cls in (TrunkSpec, TrainConfig) for f in dataclasses.fields(cls) if "help" in f.metadata]
    options = {n: getattr(args, n) for n in names}
    options |= {n: table[args.data] for n, table in PER_DATASET.items() if options[n] is None}
    return TrainConfig().replace(**options).validate()


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from resflow.data import load_dataset
    from resflow.train import CHECKPOINT, fit

    data = args.data
    try:
        if args.samples < 1:
            raise ValueError(f"--samples must be >= 1, got {args.samples}")
        config = config_from_args(args)
        if args.noise < 0:
            raise ValueError(f"--noise must be >= 0, got {args.noise}")
        options = {"circles": {"noise": args.noise}, "mnist1d": {"num_samples": args.samples}}.get(data, {})
        ds = load_dataset(data, seed=args.seed, path=args.data_path, **options)
    except (ValueError, TypeError, FileNotFoundError) as e:
        parser.error(str(e))
    spec = config.trunk
    weights = "shared" if spec.shared else "untied"
    out = Path(args.out or f"runs/{data}-{spec.model}-{weights}-d{spec.depth}-s{args.seed}")
    if args.resume and not (out / CHECKPOINT).is_file():
        parser.error(f"--resume: no checkpoint at {out / CHECKPOINT}")

    print(f"{data}: {ds.meta['n_train']} train / {ds.meta['n_test']} test, dim {ds.meta['dim']}; writing {out}")
    try:
        res = fit(
            ds, config, key=jax.random.key(args.seed), out_dir=out, resume=args.resume, progress=not args.no_progress
        )
    except ValueError as e:  # a checkpoint that does not match the flags (or new --epochs under a decaying
        # --schedule); raised before anything is written
        if not args.resume:
            raise
        parser.error(str(e))
    m = res.metrics
    print(f"test accuracy {m['test_accuracy']:.4f}  (train {m['train_accuracy']:.4f})")
    print(f"depth {m['depth_before']} -> {m['depth_after']}")
    if config.depth_adapt:
        print(
            f"test accuracy before pruning (just before the first cut): {m['accuracy_before_pruning']:.4f}, "
            f"after (final, depth {m['depth_after']}): {m['accuracy_after_pruning']:.4f}; "
            f"final weights run at depth {m['depth_before']}: {m['accuracy_final_params_at_max_depth']:.4f}"
        )
        for c in m["cuts"]:
            print(
                f"  epoch {c['epoch']}: depth {c['from']} -> {c['to']}, "
                f"test accuracy {c['test_accuracy_before']:.4f} -> {c['test_accuracy_after']:.4f}"
            )
    print(f"wall time {m['wall_time']:.1f} s; metrics, checkpoint and figures in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
