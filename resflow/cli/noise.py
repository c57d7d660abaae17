"""Accuracy under additive Gaussian input noise: ResNet vs MLP.

Trains every model of --models with resflow.fit on the same data and seeds (same init key and
batch order per seed), then evaluates test accuracy on x + sigma * eps for each sigma of
--sigmas with --draws noise draws (the same noise for every model). A model is
`kind:depth[:w_std]`: the default compares a 15-layer ResNet with a 15-layer MLP of the same
init (which does not train: a deep sigmoid MLP vanishes), a 15-layer MLP with a larger init
scale, and a 3-layer MLP of the same width (comparable clean accuracy). Sigma is in the units
of the standardised inputs. Writes results.json (table) and noise_robustness.png under --out.

Example (with the project's virtual environment):
    .venv/bin/python scripts/noise_robustness.py --out docs/results/noise_robustness \
        --numbers docs/results/noise_robustness.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_MODELS = ["resnet:15", "mlp:15", "mlp:15:6", "mlp:3"]
DEFAULT_SIGMAS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]


def build_parser() -> argparse.ArgumentParser:
    from ..training._datasets import DATASETS
    from ._common import OneLineParser

    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=DATASETS, default="digits", help="data set (default: digits)")
    p.add_argument("--data-path", default=None, help="mnist/fashion-mnist: folder with the IDX files or an .npz")
    p.add_argument("--width", type=int, default=None, help="trunk width (default: data dimension)")
    p.add_argument(
        "--models", nargs="+", default=DEFAULT_MODELS, help=f"kind:depth[:w_std] (default: {DEFAULT_MODELS})"
    )
    p.add_argument("--epochs", type=int, default=40, help="training epochs of every model (default: 40)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 3e-3)")
    p.add_argument("--batch-size", type=int, default=64, help="mini-batch size (default: 64)")
    p.add_argument(
        "--sigmas",
        type=float,
        nargs="+",
        default=DEFAULT_SIGMAS,
        help=f"noise levels, standardised units (default: {DEFAULT_SIGMAS})",
    )
    p.add_argument("--draws", type=int, default=20, help="noise draws per sigma (default: 20)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    p.add_argument("--noise-seed", type=int, default=1234, help="seed of the input noise (default: 1234)")
    p.add_argument("--out", default="runs/noise_robustness", help="output folder (default: runs/noise_robustness)")
    p.add_argument(
        "--numbers", default=None, help="also write the quoted numbers as a flat JSON dict to this file (default: none)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import jax

    from .. import load_dataset
    from ..experiments.noise import compare_noise_robustness, flat_numbers
    from ..training._checkpoint import prepare_out_dir

    specs = _check(parser, args)
    try:
        data = load_dataset(args.data, path=args.data_path)
        # Before any training: an unwritable --out would otherwise lose every result at the end.
        folder = prepare_out_dir(args.out)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))

    out = compare_noise_robustness(
        data,
        specs,
        sigmas=args.sigmas,
        key=jax.random.key(args.noise_seed),
        num_draws=args.draws,
        seeds=args.seeds,
        progress=not args.no_progress,
        width=args.width,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
    )
    (folder / "results.json").write_text(json.dumps(out.table, indent=2))
    if args.numbers:
        Path(args.numbers).write_text(json.dumps(flat_numbers(out.table), indent=1, sort_keys=True))
    _figure(args, data, out.curves, folder / "noise_robustness.png")
    _print_table(out.table)
    print(f"wrote {folder / 'results.json'} and {folder / 'noise_robustness.png'}")
    return 0


def _check(parser, args) -> list:
    """The model specs of --models; a bad flag exits 2 with one line."""
    from ..experiments.noise import parse_model_spec

    try:
        specs = [parse_model_spec(m) for m in args.models]
    except ValueError as e:
        parser.error(str(e))
    for name in ("epochs", "batch_size", "draws"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.width is not None and args.width < 1:
        parser.error("--width must be >= 1")
    if any(s < 0 for s in args.sigmas) or args.lr <= 0 or any(s < 0 for s in args.seeds):
        parser.error("--sigmas and --seeds must be >= 0, --lr > 0")
    return specs


def _figure(args, data, curves, save: Path) -> None:
    from ..plots import plot_noise_robustness

    n_classes = data.meta.get("n_classes")
    plot_noise_robustness(
        curves,
        chance=1.0 / n_classes if n_classes else None,
        title=f"{args.data}: test accuracy under input noise ({len(args.seeds)} seeds x {args.draws} draws)",
        save=save,
    )


def _print_table(table: dict) -> None:
    """One line per model: clean accuracy, median growth, mean accuracy per sigma."""
    sig = table["sigmas"]
    print(f"{'model':<22}{'clean':>7}{'growth_T':>10}" + "".join(f"{'s=' + format(s, 'g'):>8}" for s in sig))
    for label, row in table["summary"].items():
        accs = "".join(f"{a:8.3f}" for a in row["accuracy_mean"])
        print(f"{label:<22}{row['clean_accuracy']:7.3f}{row['growth_median_T']:10.3g}{accs}")


if __name__ == "__main__":
    sys.exit(main())
