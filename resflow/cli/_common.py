"""What the command lines share: one-line errors, flags generated from the config fields, the
per-data-set defaults, the data flags."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import typing
from pathlib import Path

from .._errors import InputError
from ..training._recipes import PER_DATASET as PER_DATASET


def exit_one_line(prog: str, message) -> typing.NoReturn:
    """Write ``<prog>: error: <message>`` (whitespace folded to one line) to stderr; exit 2."""
    sys.stderr.write(f"{prog}: error: {' '.join(str(message).split())}\n")
    sys.exit(2)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (``<prog>: error: ...``), exit 2.

    argparse's own `error` prints the usage block too; a script's bad input should read as one
    line naming the argument and what was expected.
    """

    def error(self, message):
        exit_one_line(self.prog, message)


def one_line_errors(main):
    """Decorator for a script's ``main(argv)``: a `resflow.InputError` raised anywhere in it (a
    bad data file, run folder, checkpoint or output folder, an option that does not fit the
    data, a loss that stopped being finite) ends the script with one line,
    ``<prog>: error: <message>``, and exit status 2, instead of a traceback.

    `<prog>` is the script's file name, as argparse's default ``prog``. Other exceptions (bugs)
    keep their traceback.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except InputError as e:
            exit_one_line(os.path.basename(sys.argv[0]), e)

    return wrapper


def scalar_type(hint):
    """int / float / str / bool of a field's type hint (``int | None`` → int)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def option_fields(cls) -> dict[str, tuple[type, dataclasses.Field]]:
    """The options of dataclass `cls` (fields with help text): name -> (scalar type, field)."""
    hints = typing.get_type_hints(cls)
    return {f.name: (scalar_type(hints[f.name]), f) for f in dataclasses.fields(cls) if "help" in f.metadata}


def add_fields(group, cls) -> list[str]:
    """One flag per field of dataclass `cls` (``--batch-size`` for ``batch_size``); returns the
    field names. Booleans get ``--x / --no-x``; fields in `PER_DATASET` default to None."""
    names = []
    for name, (kind, f) in option_fields(cls).items():
        flag = "--" + name.replace("_", "-")
        default = None if name in PER_DATASET else f.default
        shown = f"per data set {PER_DATASET[name]}" if name in PER_DATASET else default
        text = f"{f.metadata['help']} (default: {shown})".replace("%", "%%")
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            group.add_argument(flag, type=kind, default=default, choices=f.metadata["choices"], help=text)
        names.append(name)
    return names


def add_data_flags(group, *, seed_help: str | None) -> None:
    """The data flags shared by the scripts (``--data --data-path --samples --noise
    --label-column --test-fraction``, and ``--seed`` with `seed_help` unless it is None)."""
    from ..training._datasets import DATASETS

    group.add_argument(
        "--data", choices=DATASETS, default="digits", help="data set (default: digits, ships with sklearn)"
    )
    group.add_argument(
        "--data-path",
        default=None,
        help="mnist/fashion-mnist: folder with the 4 IDX files (.gz ok) or .npz; csv: the .csv file (one sample per row)",
    )
    group.add_argument(
        "--samples", type=int, default=5000, help="mnist1d: generated samples, 80%% train (default: 5000)"
    )
    group.add_argument(
        "--noise", type=float, default=0.0, help="circles: std of Gaussian noise on the points (default: 0)"
    )
    group.add_argument(
        "--label-column",
        default=None,
        help="csv: the label column, a header name or an index (negative from the end) "
        "(default: the column named 'label', else the last)",
    )
    group.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        help="csv, digits: fraction of the rows held out for testing, in (0, 1) (default: 0.2)",
    )
    if seed_help is not None:
        group.add_argument("--seed", type=int, default=0, help=seed_help)


def config_from_args(args):
    """The `TrainConfig` of parsed flags (None per-data-set options filled for ``args.data``, or
    left at the `TrainConfig` defaults for a data set not in `PER_DATASET`)."""
    from ..training._config import TrainConfig, TrunkSpec

    names = [n for cls in (TrunkSpec, TrainConfig) for n in option_fields(cls)]
    options = {n: getattr(args, n) for n in names}
    options |= {n: table[args.data] for n, table in PER_DATASET.items() if options[n] is None and args.data in table}
    # A data set without per-data-set values (csv: the user's own) gets the library's defaults.
    options = {n: v for n, v in options.items() if not (n in PER_DATASET and v is None)}
    return TrainConfig().replace(**options).validate()


def data_source_of(args, seed: int) -> dict:
    """The `resflow.load_dataset` arguments of the flags (only the options the data set reads),
    with data seed `seed` (split / generation)."""
    options = {"circles": {"noise": args.noise}, "mnist1d": {"num_samples": args.samples}}.get(args.data, {})
    # Only when given: the loaders' defaults then apply, and default folder names stay as before.
    given = {"label_column": args.label_column, "test_fraction": args.test_fraction}
    options |= {k: v for k, v in given.items() if v is not None}
    path = str(Path(args.data_path).resolve()) if args.data_path is not None else None
    return {"name": args.data, "seed": seed, "path": path, "standardize": True, "options": options}


def check_data_flags(args) -> None:
    """**Raises:** `ValueError` naming ``--samples`` / ``--noise`` / ``--test-fraction`` when out
    of range, or ``--label-column`` / ``--test-fraction`` given for a data set that does not read it."""
    for flag, value, readers in (
        ("--label-column", args.label_column, ("csv",)),
        ("--test-fraction", args.test_fraction, ("csv", "digits")),
    ):
        if value is not None and args.data not in readers:
            raise ValueError(f"{flag} applies to --data {' or '.join(readers)} only, not to --data {args.data}")
    if args.test_fraction is not None and not 0.0 < args.test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    if args.noise < 0:
        raise ValueError(f"--noise must be >= 0, got {args.noise}")
