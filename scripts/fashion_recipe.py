"""The Fashion-MNIST recipe search: which training choices lift the shared ResNet past 0.89.

    python scripts/fashion_recipe.py --run recipe --seeds 0-2          # train one candidate's seeds
    python scripts/fashion_recipe.py                                   # only assemble the runs found

`--help` lists every flag. A thin wrapper: the command is `resflow.cli.fashion_recipe.main`, also installed
as the `resflow-fashion-recipe` entry point (pyproject.toml).
"""

from resflow.cli.fashion_recipe import main

if __name__ == "__main__":
    raise SystemExit(main())
