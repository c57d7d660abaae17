"""What the command-line scripts share (not part of the library's top level)."""

from __future__ import annotations

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (``<prog>: error: ...``), exit 2.

    argparse's own `error` prints the usage block too; a script's bad input should read as one
    line naming the argument and what was expected.
    """

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {' '.join(str(message).split())}\n")
        sys.exit(2)
