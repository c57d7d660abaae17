"""Analyse a saved run (spectra, fixed points, interactions, perturbations, separability, noise).

    python scripts/analyze.py RUN_DIR [--what lyapunov ...] [--out FOLDER] [--max-samples 512]

`--help` lists every flag. A thin wrapper: the command is `resflow.cli.analyze.main`, also installed
as the `resflow-analyze` entry point (pyproject.toml).
"""

from resflow.cli.analyze import main

if __name__ == "__main__":
    raise SystemExit(main())
