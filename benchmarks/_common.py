"""Timing, compile/memory measurement, machine info, tables and JSON for the benchmarks.

Conventions shared by every benchmark:

- run time: median of several repeats after one warm-up call, each ended by
  `jax.block_until_ready` (torch: the result is a CPU tensor, so the call is synchronous);
- compile time: wall time of ``jax.jit(f).lower(*args)`` (tracing) plus ``.compile()``
  (XLA), measured on a fresh `jax.jit` so no cache is hit;
- memory: XLA's own buffer assignment for the compiled executable,
  ``compiled.memory_analysis()``: temp + argument + output − alias bytes (the temp
  allocation is already packed by buffer live ranges). It is the planned size of device
  buffers for one call, not the process RSS. (On CPU ``peak_memory_in_bytes`` counts only
  arguments + outputs in jax 0.10, so it is not used.)
"""

from __future__ import annotations

import datetime
import functools
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

# A full garbage collection before each timed compile, so that a previous variant's garbage is
# not collected inside this one's timing. It costs ~0.1 s in a fresh process and ~1 s in one that
# has built thousands of programs (a pytest worker): the smoke tests, which time nothing, turn it off.
COLLECT_BEFORE_COMPILE = True


@functools.partial(jax.jit, static_argnames="depth")
def forward_unrolled(trunk, x0, *, depth: int):
    """x_T of a shared trunk written as a Python loop under `jax.jit`: compile time grows with
    depth. The baseline of scan_vs_unrolled.py; gives the same x_T as `resflow.forward`."""
    x = x0
    for _ in range(depth):  # deliberately unrolled
        x = trunk.step(x)
    return x


def compile_and_time(fns: dict, args: tuple, *, repeats: int, max_time: float) -> tuple[dict, dict]:
    """Compile every ``fn(*args)`` of `fns`, then time them interleaved.

    Returns ``(row, outs)``: row has ``<name> compile s``, ``<name> ms`` (median) and
    ``<name> min ms``; outs the compiled functions' results, for comparing the variants.
    """
    row, outs, calls = {}, {}, {}
    for name, fn in fns.items():
        compiled, info = compile_jit(fn, *args)
        calls[name] = functools.partial(compiled, *args)
        outs[name] = compiled(*args)
        row[f"{name} compile s"] = info["total_compile_s"]
    for name, t in time_interleaved(calls, repeats=repeats, max_time=max_time).items():
        row[f"{name} ms"] = t["median_s"] * 1e3
        row[f"{name} min ms"] = t["min_s"] * 1e3
    return row, outs


def block(x):
    """Wait for every array in `x` (a pytree); torch tensors are already synchronous."""
    return jax.block_until_ready(x)


def time_call(
    fn: Callable[[], object], *, repeats: int = 5, min_time: float = 0.2, max_time: float = 20.0, warmup: int = 1
) -> dict:
    """Median wall time of ``fn()`` in seconds.

    After `warmup` calls, the call is repeated at least `repeats` times, or more (up to
    50 repeats) while the total stays under `min_time`; repeats stop early (but never below
    3) once `max_time` seconds have been spent, so slow deep cases stay affordable.
    Very fast calls are grouped in batches so the timer's resolution does not matter.
    """
    for _ in range(warmup):
        block(fn())
    t0 = time.perf_counter()
    block(fn())
    first = time.perf_counter() - t0
    per_batch = max(1, int(1e-3 / max(first, 1e-9)))  # batch calls shorter than ~1 ms
    times = [first]
    spent = first
    while True:
        enough = len(times) >= repeats and spent >= min_time
        if enough or len(times) >= 50 or (len(times) >= 3 and spent >= max_time):
            break
        t0 = time.perf_counter()
        for _ in range(per_batch):
            out = fn()
        block(out)
        dt = (time.perf_counter() - t0) / per_batch
        times.append(dt)
        spent += dt * per_batch
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times)}


def memory_bytes(compiled) -> int | None:
    """Planned peak buffer bytes of a compiled XLA executable (see module docstring)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # some backends do not implement it
        return None
    if m is None:
        return None
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes)


def compile_jit(fn: Callable, *args, static_argnums=()) -> tuple[Callable, dict]:
    """Trace and compile a fresh ``jax.jit(fn)`` for `args`.

    **Returns:** ``(compiled, info)`` where `compiled` is the XLA executable (call it with the
    same `args`) and `info` holds ``trace_s``, ``compile_s``, ``total_compile_s``,
    ``memory_bytes`` and ``flops`` (XLA's cost analysis; may be None).
    """
    if COLLECT_BEFORE_COMPILE:
        gc.collect()
    jitted = jax.jit(fn, static_argnums=static_argnums)
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list | tuple) else cost
        flops = float(cost.get("flops")) if cost and "flops" in cost else None
    except Exception:
        flops = None
    info = {
        "trace_s": t1 - t0,
        "compile_s": t2 - t1,
        "total_compile_s": t2 - t0,
        "memory_bytes": memory_bytes(compiled),
        "xla_flops": flops,
    }
    return compiled, info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """Machine, load, versions and JAX device, recorded in every JSON."""
    info = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", None) or _version("jaxlib"),
        "numpy": np.__version__,
        "torch": _version("torch"),
        "device": str(jax.devices()[0]),
        "device_kind": jax.devices()[0].device_kind,
        "x64": bool(jax.config.jax_enable_x64),
    }
    return info


def _version(pkg: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(pkg)
    except Exception:
        return None


def save_json(name: str, payload: dict, out_dir: Path | None = None) -> Path:
    """Write ``{"machine": ..., **payload}`` to ``<out_dir>/<name>.json``; returns the path."""
    out_dir = Path(out_dir) if out_dir is not None else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    with open(path, "w") as f:
        json.dump({"machine": machine_info(), **payload}, f, indent=1, default=_jsonable)
    return path


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray | jax.Array):
        return np.asarray(x).tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def fmt(x, spec: str = ".3g") -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return format(x, spec)
    return str(x)


def table(rows: list[dict], cols: list[str], *, title: str | None = None) -> str:
    """A GitHub-markdown table of `rows` restricted to `cols` (missing entries shown as —)."""
    lines = []
    if title:
        lines.append(f"\n### {title}\n")
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def ratio(a, b):
    """a / b, or None when either is missing."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def time_interleaved(fns: dict[str, Callable[[], object]], *, repeats: int = 5, max_time: float = 20.0) -> dict:
    """Median wall time of each ``fns[name]()``, measured in interleaved rounds.

    On a shared machine the load drifts; timing A, B, A, B, … instead of A, A, …, B, B, …
    exposes every variant to the same drift, so their ratio stays meaningful. Each function
    is warmed up once, then each round times one call (or a batch of calls, for calls under
    ~1 ms) of every function; rounds stop after `repeats` (≥ 3) or once `max_time` seconds
    have been spent with at least 3 rounds done.

    **Returns:** ``{name: {"median_s", "min_s", "repeats"}}``.
    """
    per_batch = {}
    for name, fn in fns.items():
        block(fn())  # warm-up (and compile, if not yet compiled)
        t0 = time.perf_counter()
        block(fn())
        per_batch[name] = max(1, int(1e-3 / max(time.perf_counter() - t0, 1e-9)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    spent = 0.0
    for r in range(max(repeats, 3)):
        if r >= 3 and spent >= max_time:
            break
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(per_batch[name]):
                out = fn()
            block(out)
            dt = time.perf_counter() - t0
            spent += dt
            times[name].append(dt / per_batch[name])
    return {
        name: {"median_s": statistics.median(ts), "min_s": min(ts), "repeats": len(ts)} for name, ts in times.items()
    }


def cli_args(doc: str, argv=None, *, extra: Callable | None = None):
    """The common command line: ``--quick`` and ``--out`` (plus `extra(parser)` options)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.strip().split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a minute or two")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and PNG")
    if extra is not None:
        extra(ap)
    return ap.parse_args(argv)


def report(name: str, result: dict, *, quick: bool, out: Path, tables, plot: Callable) -> dict:
    """Print `tables` (``(rows, cols, title)`` triples), save ``<name>[_quick].json/.png`` in `out`."""
    result["quick"] = quick
    name = name + ("_quick" if quick else "")
    result["tables_markdown"] = [table(rows, cols, title=title) for rows, cols, title in tables]
    print("wrote", save_json(name, result, out))
    plot(result, save=Path(out) / f"{name}.png")
    return result
