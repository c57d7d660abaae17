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
    np.testing.assert_allclose(np.asarray(ns["r_alone"]), np.asarray(ns["r"]), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(ns["rf"].reconstruct_output(ns["x0"], ns["r"])), np.asarray(ns["traj"][-1]), atol=1e-6
    )
    assert (tmp_path / "residuals.png").is_file()
