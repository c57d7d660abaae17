"""The project's error classes for bad input that the caller can fix, all in one place.

`InputError` is a `ValueError`: an argument, option, file or folder that a call cannot use;
its message names what is at fault and what was expected. The file errors derive from it:

- `DataError`: a data file (or array) that cannot be loaded as a data set;
- `RunError`: a run folder or file that cannot be loaded or resumed;
- `CheckpointError`: a truncated, corrupted, altered or foreign checkpoint;
- `OutputError`: an output folder or file that cannot be created or written (also an `OSError`).

`resflow.training._fit.NonFiniteLossError` derives from `InputError` too. The command-line
scripts report any `InputError` as one line, ``<prog>: error: <message>``, with exit status 2
(`resflow.cli.one_line_errors`).
"""

from __future__ import annotations

__all__ = ["InputError", "DataError", "RunError", "CheckpointError", "OutputError"]


class InputError(ValueError):
    """Bad input (an argument, option, file or folder); the message names it and what was expected."""


class DataError(InputError):
    """A data file or array that cannot be used as a data set; the message names the file and the problem."""


class RunError(InputError):
    """A run folder or file that cannot be loaded or resumed; the message names the file."""


class CheckpointError(InputError):
    """A checkpoint file that is truncated, corrupted, altered or not a resflow checkpoint."""


class OutputError(OSError, InputError):
    """An output folder or file that cannot be created or written (the message names the path).

    Also an `InputError` (a `ValueError`), so command lines report it like any bad argument (exit 2).
    """
