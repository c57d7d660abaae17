"""The circles recipe search: which training choices make every seed learn, at what final depth.

    python scripts/recipe_search.py            # docs/results/recipe_search.json and docs/figures/recipe_search.png
    python scripts/recipe_search.py --seeds 0-3 --epochs 100 --out /tmp/rs   # a smaller check

`--help` lists every flag. A thin wrapper: the command is `resflow.cli.recipe_search.main`, also installed
as the `resflow-recipe-search` entry point (pyproject.toml).
"""

from resflow.cli.recipe_search import main

if __name__ == "__main__":
    raise SystemExit(main())
