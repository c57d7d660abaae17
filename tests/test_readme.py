"""The README's Python examples run as written (they are the first thing a user copies)."""

import re
from pathlib import Path

import numpy as np


def test_readme_examples_run(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
    assert "rf.trajectory" in code
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    # The identities the README claims: the residual-only recurrence and x_T = x_0 + h Σ r_t.
    # float32 here: the recurrence's logit costs a few ulps (the README says ~1e-6).
    assert np.abs(np.asarray(ns["r_alone"]) - np.asarray(ns["r"])).max() < 3e-6
    # Reference: x_T = x_0 + h Σ r_t summed in float64 numpy.
    x_T = np.asarray(ns["x0"], np.float64) + float(ns["trunk"].h) * np.asarray(ns["r"], np.float64).sum(0)
    np.testing.assert_allclose(np.asarray(ns["traj"][-1]), x_T, atol=1e-5)
    assert (tmp_path / "residuals.png").is_file()
