"""The project's error class for bad input that the caller can fix.

`InputError` is a `ValueError`: an argument, option, file or folder that a call cannot use;
its message names what is at fault and what was expected. The library's own error classes
(`resflow.training._dataset.DataError`, `resflow.training._runs.RunError`, `resflow.training._checkpoint.CheckpointError`,
`resflow.training._checkpoint.OutputError`, `resflow.training._fit.NonFiniteLossError`) derive from it, and the
command-line scripts report any `InputError` as one line, ``<prog>: error: <message>``, with
exit status 2 (`resflow.cli.one_line_errors`).
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input (an argument, option, file or folder); the message names it and what was expected."""
