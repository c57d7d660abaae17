"""Keep the numbers quoted in the docs equal to the results files the examples write.

    python scripts/docs_numbers.py           # list every stale number (exit 1 if any)
    python scripts/docs_numbers.py --write   # rewrite them from docs/results/*.json

`--help` lists every flag. A thin wrapper: the command is `resflow.cli.docs_numbers.main`, also installed
as the `resflow-docs-numbers` entry point (pyproject.toml).
"""

from resflow.cli.docs_numbers import main

if __name__ == "__main__":
    raise SystemExit(main())
