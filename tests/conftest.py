"""Float64 is enabled for every test so references can be exact; float32 tests ask for it."""

import hashlib
import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache"

# One persistent compilation cache for the whole run: the two xdist workers and the scripts that
# tests start as subprocesses compile many of the same programs, and a program compiled once is
# loaded from disk by the others. The environment (not jax.config) so that subprocesses inherit it.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(CACHE / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# Test programs are tiny and compiled once each, so building them is most of the suite's time
# and running them almost none: build them the cheapest way. No LLVM optimisation passes (about
# 15 % of the suite's CPU time); XLA:CPU's older elemental emitter instead of its MLIR fusion
# emitters (about 40 % of the compile time of a training program); no XNNPACK rewrites, no
# expensive LLVM passes, one codegen unit per program. Numerics are IEEE either way (no fast-math).
FAST_COMPILE = {
    "--xla_backend_optimization_level": "0",
    "--xla_cpu_use_fusion_emitters": "false",
    "--xla_cpu_use_xnnpack": "false",
    "--xla_llvm_disable_expensive_passes": "true",
    "--xla_cpu_parallel_codegen_split_count": "1",
}


def known_xla_flags(flags: dict[str, str], base: str) -> dict[str, str]:
    """The `flags` this jaxlib's XLA knows: XLA aborts a process whose XLA_FLAGS name a flag it
    does not know, and flags come and go between releases (``jax>=0.4.30`` is allowed). Found by
    starting jax with them in a subprocess and dropping each one it rejects; the rejected names
    are kept per jaxlib version in .pytest_cache, so only the first run of a jaxlib pays (~2 s)."""
    asked = hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:8]
    memo = CACHE / f"xla-flags-unknown-to-jaxlib-{version('jaxlib')}-{asked}.json"
    try:
        unknown = set(json.loads(memo.read_text()))
    except (OSError, ValueError):
        unknown = set()
        while True:
            known = {k: v for k, v in flags.items() if k not in unknown}
            env = dict(
                os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join([base, *(f"{k}={v}" for k, v in known.items())])
            )
            done = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], env=env, capture_output=True)
            if done.returncode == 0:
                break
            rejected = re.search(r"Unknown flags? in XLA_FLAGS: (--\w+)", done.stderr.decode(errors="replace"))
            if rejected is None or rejected[1] not in known:
                return {}  # jax failed otherwise (or on the caller's own XLA_FLAGS): add nothing
            unknown.add(rejected[1])
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps(sorted(unknown)))  # a torn read is a ValueError above: probed again
    return {k: v for k, v in flags.items() if k not in unknown}


_flags = os.environ.get("XLA_FLAGS", "")
_fast = {k: v for k, v in FAST_COMPILE.items() if k not in _flags}
if _fast:
    os.environ["XLA_FLAGS"] = " ".join(
        [_flags] + [f"{k}={v}" for k, v in known_xla_flags(_fast, _flags).items()]
    ).strip()

import signal  # noqa: E402

# A suite started in the background (nohup, or `&` in a shell without job control) inherits
# SIGINT ignored; the signal tests check Python's own Ctrl-C handler, as a terminal has it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")

import gc  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Rough seconds of each heavy test file on 2 busy cores (measured; only the order depends on them).
# pytest-xdist hands whole files to its workers (`--dist loadfile`) in collection order (the
# Makefile passes `--no-loadscope-reorder`, which would order them by test count): the heavy files
# go first, so that the run ends on small files instead of one worker idling while the other
# finishes a 40 s one. Files not listed keep their order, after these.
FILE_SECONDS = {
    "test_reproduce.py": 45,
    "test_continuous.py": 40,
    "test_dynamics.py": 32,
    "test_sweep.py": 31,
    "test_train_cli.py": 30,
    "test_train.py": 26,
    "test_sweep_cli.py": 22,
    "test_model.py": 19,
    "test_plots_layout.py": 18,
    "test_jacobians.py": 16,
    "test_benchmarks.py": 15,
    "test_fixed_point_search.py": 15,
    "test_residuals.py": 15,
    "test_docs_site.py": 13,
    "test_attractors.py": 13,
    "test_covariant.py": 12,
    "test_analyze_cli.py": 11,
    "test_long_run.py": 11,
    "test_interactions.py": 10,
    "test_separability.py": 10,
}


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: -FILE_SECONDS.get(item.path.name, 0))  # stable: a file's tests stay together


def pytest_collection_finish(session):
    """Python's cyclic garbage collector, tuned for a process that builds thousands of programs:
    the imported modules and collected tests are frozen out of its scans, and it runs after every
    50,000 new objects instead of 700. With the defaults its full collections took ~12 s of each
    worker's time (every test's jaxprs and traced functions stay referenced by jax's caches)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def np_act(name, a):
    return {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}[name](a)


def np_trajectory(W, b, x0, depth, *, model="resnet", activation="sigmoid", h=1.0):
    """Float64 numpy reference: a plain Python loop over layers."""
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    x = np.asarray(x0, np.float64)
    out = [x]
    for t in range(depth):
        Wt, bt = (W, b) if W.ndim == 2 else (W[t], b[t])
        r = np_act(activation, x @ Wt.T + bt)
        x = x + h * r if model == "resnet" else r
        out.append(x)
    return np.stack(out)


def count_compiles(fn):
    """(fn(), number of XLA programs it built), from jax.monitoring's events: a backend compile, or
    a load from the persistent compilation cache (which stands in for a compile when warm)."""
    events = []

    def listener(name, *args, **kwargs):
        if name in ("/jax/core/compile/backend_compile_duration", "/jax/compilation_cache/cache_retrieval_time_sec"):
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        out = fn()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return out, len(events)


def legends_on_data(fig, *, expect_legend: bool = True):
    """(legend, axes) pairs whose window boxes overlap: a legend that covers a data area."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    legends = list(fig.legends) + [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    if expect_legend:
        assert legends
    return [
        (leg, ax)
        for leg in legends
        for ax in axes
        if leg.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    ]


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test's figures closed after it (pyplot keeps them open until closed)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture
def key():
    return jax.random.key(0)
