"""Accuracy under additive Gaussian input noise: ResNet vs MLP.

    python scripts/noise_robustness.py --out docs/results/noise_robustness --numbers docs/results/noise_robustness.json

`--help` lists every flag. A thin wrapper: the command is `resflow.cli.noise.main`, also installed
as the `resflow-noise` entry point (pyproject.toml).
"""

from resflow.cli.noise import main

if __name__ == "__main__":
    raise SystemExit(main())
