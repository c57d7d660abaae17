"""Experiment drivers: they train networks with `resflow.fit` and compare them with the
metrics of resflow (which live apart, in the analysis modules, and never train)."""
