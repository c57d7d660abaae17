"""Smoke tests: each benchmark's core runs at toy size and its results are consistent.

No timing assertions (CI does not time anything); these keep the scripts from rotting and
check what the benchmarks compare actually agrees (same numbers from every variant).
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _common as C  # noqa: E402
import analysis  # noqa: E402
import qr_core  # noqa: E402
import roofline  # noqa: E402
import scan_vs_unrolled as svu  # noqa: E402
import vs_torch  # noqa: E402

C.COLLECT_BEFORE_COMPILE = False  # the smoke tests time nothing (see _common)

# Toy sizes: width 5, and batches of 5 where a benchmark draws its inputs with jax.random, so that
# the (5, 5) and (5,) float32 draws of every benchmark are one compiled program each (every new
# shape of a jax.random draw builds one, ~0.5 s).


def test_scan_vs_unrolled_rows_and_remat(tmp_path):
    # One depth: every variant is one compiled program (the depth sweep is the benchmark's).
    res = svu.run(
        widths=(5,), depths=(5,), batch=5, unroll_ks=(2,), unroll_depths=(5,), repeats=1, max_time=0.01, verbose=False
    )
    got = {(r["mode"], r["depth"], r["variant"]) for r in res["rows"]}
    for mode in ("forward", "train"):
        assert {(mode, 5, "scan"), (mode, 5, "unrolled"), (mode, 5, "scan_unroll2")} <= got
    assert ("train", 5, "scan_remat") in got and ("forward", 5, "scan_remat") not in got
    assert len(res["rows"]) == 7
    for r in res["rows"]:
        assert r["median_s"] > 0 and r["total_compile_s"] > 0 and r["memory_bytes"] > 0
    summary = svu.summarise(res)
    assert len(summary["ratios"]) == 2 and all(r["compile unrolled/scan"] > 0 for r in summary["ratios"])
    fig = svu.plot(res, save=tmp_path / "svu.png")
    assert (tmp_path / "svu.png").exists() and len(fig.axes) == 6


def test_train_step_matches_numpy_gradient():
    params, x, y = svu.make_inputs(3, 2, dtype=jnp.float64)
    loss, new = svu.train_step_fn(svu.forward_fn("scan", 2))(params, x, y)

    # Central differences on W[0, 1] of the float64 loss as the independent reference.
    def L(W):
        xx = x
        for _ in range(2):
            xx = xx + 1 / (1 + np.exp(-(xx @ W.T + params.b)))
        return np.mean((xx - y) ** 2)

    W = np.asarray(params.W)
    E = np.zeros_like(W)
    E[0, 1] = 1e-6
    g01 = (L(W + E) - L(W - E)) / 2e-6
    np.testing.assert_allclose(loss, L(W), rtol=1e-12)
    np.testing.assert_allclose((W - np.asarray(new.W))[0, 1] / svu.LR, g01, rtol=1e-6)


def test_analysis_variants_agree(tmp_path):
    res = analysis.run(widths=(5,), depth=5, batch=5, draws=2, points=2, repeats=1, max_time=0.01, verbose=False)
    assert {r["task"] for r in res["rows"]} == {
        "jacobians",
        "jacobian spectrum",
        "lyapunov k=n",
        "lyapunov k=10",
        "perturbation growth",
        "fixed points",
    }
    for r in res["rows"]:
        for key, v in r.items():
            if key.startswith("max |"):
                assert v is not None and v < 1e-3, (r["task"], key, v)
    rows = analysis.speedup_rows(res)
    assert all(r["speed-up vs jacfwd"] > 0 for r in rows)
    fig = analysis.plot(res, save=tmp_path / "a.png")
    assert len(fig.axes[0].lines) == 6 + 2  # one per task, plus the parity and 10x lines


def test_roofline(tmp_path):
    res = roofline.run(widths=(5,), batch=5, depth=3, big=5, repeats=1, max_time=0.01, verbose=False)
    (row,) = res["rows"]
    assert row["forward GFLOP/s"] > 0 and row["matmul GFLOP/s"] >= row["dot GFLOP/s"]
    roofline.plot(res, save=tmp_path / "r.png")
    assert (tmp_path / "r.png").exists()


def test_vs_torch(tmp_path):
    if vs_torch.torch is None:
        assert vs_torch.run() == {"skipped": vs_torch.TORCH_MISSING}
        return
    res = vs_torch.run(
        widths=(4,),
        depths=(3,),
        batch=2,
        lyap_cases=((4, 2, 3),),
        lyap_batch=2,
        use_compile=False,
        repeats=1,
        max_time=0.01,
        verbose=False,
    )
    tasks = [r["task"] for r in res["rows"]]
    assert tasks == ["forward", "train", "lyapunov k=2"]
    for r in res["rows"]:
        assert r["resflow ms"] > 0 and r["torch eager ms"] > 0
    # torch's forward and Lyapunov exponents reproduce resflow's (float32)
    assert res["rows"][0]["rel diff"] < 1e-5 and res["rows"][2]["rel diff"] < 1e-5
    vs_torch.plot(res, save=tmp_path / "t.png")


def test_torch_train_step_matches_resflow():
    torch = vs_torch.torch
    if torch is None:
        return
    params, x, y = svu.make_inputs(4, 3)
    loss, new = svu.train_step_fn(svu.forward_fn("scan", 3))(params, x, y)
    W, b = (torch.tensor(np.asarray(a), requires_grad=True) for a in (params.W, params.b))
    tl = vs_torch.torch_train_step(
        vs_torch.torch_loss, W, b, torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y)), 3
    )
    np.testing.assert_allclose(tl.numpy(), loss, rtol=1e-5)
    np.testing.assert_allclose(W.detach().numpy(), new.W, rtol=1e-5, atol=1e-7)


def test_time_helpers():
    t = C.time_call(lambda: jnp.ones(3), repeats=3, min_time=0.0)
    assert t["repeats"] >= 3 and t["median_s"] > 0
    both = C.time_interleaved({"a": lambda: jnp.ones(3), "b": lambda: jnp.zeros(3)}, repeats=3)
    assert set(both) == {"a", "b"} and all(v["repeats"] == 3 for v in both.values())
    assert C.ratio(1.0, None) is None and C.ratio(2.0, 4.0) == 0.5
    info = C.machine_info()
    assert info["cpu_cores"] >= 1 and info["device"] == str(jax.devices()[0])


def test_qr_core_variants_agree(tmp_path):
    res = qr_core.run(cases=((5, 2, 4, 5),), repeats=1, max_time=0.01, verbose=False)
    assert len(res["rows"]) == 1
    for r in res["rows"]:
        for key, v in r.items():
            if key.startswith("max |"):
                assert v < 1e-5, (key, v)  # every variant gives plain's float32 exponents
            if key.endswith(" ms"):
                assert v > 0
    rows = qr_core.summary_rows(res)
    assert {r["variant"] for r in rows} == set(qr_core.variants(4))
    fig = qr_core.plot(res, save=tmp_path / "q.png")
    assert (tmp_path / "q.png").exists() and len(fig.axes) == 1
