"""Train a residual network (or its MLP baseline) classifier, optionally adapting its depth.

Example: `python scripts/train.py --depth-adapt` trains 15 shared sigmoid layers of width 64
on scikit-learn's digits and removes converged last layers (the paper's rule). Writes
metrics.jsonl (per epoch), metrics.json, checkpoint.msgpack and figures under --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Per-data-set defaults where one value does not fit all (see docs/training.md).
EPOCHS = {"digits": 40, "circles": 300, "mnist1d": 60, "mnist": 15, "fashion-mnist": 15}
BATCH = {"digits": 64, "circles": 50, "mnist1d": 100, "mnist": 128, "fashion-mnist": 128}
LR = {"digits": 3e-3, "circles": 1e-2, "mnist1d": 3e-3, "mnist": 1e-3, "fashion-mnist": 1e-3}
WARMUP = {"digits": 5, "circles": 100, "mnist1d": 10, "mnist": 3, "fashion-mnist": 3}
# circles, width 3: w_std 2 reached >= 99.9 % test accuracy for 6 of 8 seeds, w_std 1 for 4 of 8.
W_STD = {"digits": 1.0, "circles": 2.0, "mnist1d": 1.0, "mnist": 1.0, "fashion-mnist": 1.0}


def build_parser() -> argparse.ArgumentParser:
    from resflow.data import DATASETS
    from resflow.train import OPTIMIZERS, SCHEDULES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", choices=DATASETS, default="digits", help="data set (digits ships with scikit-learn)")
    g.add_argument(
        "--data-path", default=None, help="mnist/fashion-mnist: folder with the 4 IDX files (.gz ok) or .npz"
    )
    g.add_argument("--samples", type=int, default=5000, help="mnist1d: number of generated samples (80%% train)")
    g.add_argument("--noise", type=float, default=0.0, help="circles: std of Gaussian noise added to the points")
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=("resnet", "mlp"), default="resnet", help="x+h*act(Wx+b) or act(Wx+b)")
    g.add_argument(
        "--width",
        type=int,
        default=None,
        help="trunk width; None: the data dimension (another width adds a trained linear lift)",
    )
    g.add_argument("--depth", type=int, default=15, help="initial number of layers")
    s = g.add_mutually_exclusive_group()
    s.add_argument("--shared", dest="shared", action="store_true", default=True, help="one W, b for all layers")
    s.add_argument(
        "--untied", dest="shared", action="store_false", default=argparse.SUPPRESS, help="one W_t, b_t per layer"
    )
    g.add_argument("--h", type=float, default=1.0, help="Euler step size of the residual update")
    g.add_argument("--activation", choices=("sigmoid", "tanh", "relu"), default="sigmoid", help="trunk activation")
    g.add_argument(
        "--w-std", type=float, default=None, help=f"trunk init: W ~ N(0, w_std²/width); None: per data set {W_STD}"
    )
    g.add_argument("--x64", action="store_true", help="train in float64 instead of float32")
    g.add_argument(
        "--remat", action="store_true", help="checkpoint the trunk in √depth segments (deep trunks: less memory)"
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=None, help=f"epochs; None: per data set {EPOCHS}")
    g.add_argument("--batch-size", type=int, default=None, help=f"mini-batch size; None: per data set {BATCH}")
    g.add_argument("--lr", type=float, default=None, help=f"learning rate; None: per data set {LR}")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optax optimiser")
    g.add_argument("--schedule", choices=SCHEDULES, default="constant", help="learning-rate schedule")
    g.add_argument("--weight-decay", type=float, default=0.0, help="decoupled weight decay (adamw)")
    g.add_argument("--clip-norm", type=float, default=None, help="clip gradients to this global norm")
    g.add_argument("--seed", type=int, default=0, help="seed of init, shuffling and data generation/split")
    g = p.add_argument_group("depth adaptation")
    g.add_argument("--depth-adapt", action="store_true", help="remove the last layer when its residuals converged")
    g.add_argument("--depth-tol", type=float, default=0.01, help="cut when mean |r_T - r_{T-1}|_1 / N < tol")
    g.add_argument("--min-depth", type=int, default=1, help="never cut below this depth")
    g.add_argument(
        "--depth-warmup", type=int, default=None, help=f"epochs before the first cut; None: per data set {WARMUP}"
    )
    g.add_argument("--depth-plateau", type=int, default=0, help="cut only when train loss stalled this many epochs")
    g.add_argument("--multi-cut", action="store_true", help="remove as many layers per epoch as the rule allows")
    g.add_argument("--fold-drift", action="store_true", help="fold removed layers' mean drift into the readout bias")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="output folder (default runs/<data>-<model>-<weights>-d<depth>-s<seed>)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    from resflow.data import load_dataset
    from resflow.train import CHECKPOINT, TrainConfig, fit

    for name in ("samples", "depth", "epochs", "batch_size", "min_depth"):
        v = getattr(args, name)
        if v is not None and v < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    data = args.data
    try:
        config = TrainConfig(
            model=args.model,
            width=args.width,
            depth=args.depth,
            shared=args.shared,
            h=args.h,
            activation=args.activation,
            w_std=args.w_std if args.w_std is not None else W_STD[data],
            remat=args.remat,
            epochs=args.epochs or EPOCHS[data],
            batch_size=args.batch_size or BATCH[data],
            optimizer=args.optimizer,
            lr=args.lr if args.lr is not None else LR[data],
            schedule=args.schedule,
            weight_decay=args.weight_decay,
            clip_norm=args.clip_norm,
            dtype="float64" if args.x64 else "float32",
            depth_adapt=args.depth_adapt,
            depth_tol=args.depth_tol,
            min_depth=args.min_depth,
            depth_warmup=args.depth_warmup if args.depth_warmup is not None else WARMUP[data],
            depth_plateau=args.depth_plateau,
            multi_cut=args.multi_cut,
            fold_drift=args.fold_drift,
        ).validate()
        if args.noise < 0:
            raise ValueError(f"--noise must be >= 0, got {args.noise}")
        options = {"circles": {"noise": args.noise}, "mnist1d": {"num_samples": args.samples}}.get(data, {})
        ds = load_dataset(data, seed=args.seed, path=args.data_path, **options)
    except (ValueError, TypeError, FileNotFoundError) as e:
        parser.error(str(e))
    weights = "shared" if args.shared else "untied"
    out = Path(args.out or f"runs/{data}-{args.model}-{weights}-d{args.depth}-s{args.seed}")
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
