"""The command lines: one module per command, each with ``main(argv=None) -> int``.

They are installed as the ``[project.scripts]`` entry points of pyproject.toml (``resflow-train``,
``resflow-sweep``, ``resflow-analyze``, ``resflow-reproduce``, ``resflow-noise``,
``resflow-recipe-search``, ``resflow-docs-numbers``); ``scripts/*.py`` are thin wrappers over
the same functions. Not part of the library's top level: ``resflow.cli.train`` and its siblings
are imported on their own (each imports JAX only when it runs).

The shared parsing and error reporting (``_common``) is re-exported here.
"""

from ._common import PER_DATASET as PER_DATASET
from ._common import OneLineParser as OneLineParser
from ._common import add_data_flags as add_data_flags
from ._common import add_fields as add_fields
from ._common import check_data_flags as check_data_flags
from ._common import config_from_args as config_from_args
from ._common import data_source_of as data_source_of
from ._common import exit_one_line as exit_one_line
from ._common import one_line_errors as one_line_errors
from ._common import option_fields as option_fields
from ._common import scalar_type as scalar_type
