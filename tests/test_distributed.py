"""resflow.training._distributed: settings from arguments / environment, and two processes on localhost.

The two-process test runs the same script twice (process 0 and 1, CPU devices, gloo
collectives), as a cluster would on two hosts: a global array sharded over both processes'
devices goes through one jitted program, and `gather` / `gather_objects` must give process 0
the full values, compared with numpy.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from resflow.training import _distributed as dist

ROOT = Path(__file__).resolve().parents[1]
DIST_FILE = str(ROOT / "resflow" / "training" / "_distributed.py")


def test_settings_from_arguments_then_environment():
    env = {"RESFLOW_COORDINATOR": "10.0.0.1:1234", "RESFLOW_NUM_PROCESSES": "4", "RESFLOW_PROCESS_ID": "3"}
    assert dist.resolve(env=env) == {"coordinator": "10.0.0.1:1234", "num_processes": 4, "process_id": 3}
    # An argument wins over its variable; the others still come from the environment.
    got = dist.resolve(process_id=0, env=env)
    assert got == {"coordinator": "10.0.0.1:1234", "num_processes": 4, "process_id": 0}
    assert dist.resolve("h:1", 2, 1, env={}) == {"coordinator": "h:1", "num_processes": 2, "process_id": 1}
    assert dist.resolve(env={}) is None  # nothing given: JAX's cluster detection decides


@pytest.mark.parametrize(
    "args, env, message",
    [
        (
            {"coordinator": "h:1"},
            {},
            "missing num_processes (argument num_processes or environment RESFLOW_NUM_PROCESSES)",
        ),
        ({}, {"RESFLOW_NUM_PROCESSES": "2", "RESFLOW_PROCESS_ID": "0"}, "missing coordinator"),
        ({"coordinator": "h:1", "num_processes": 2}, {}, "environment RESFLOW_PROCESS_ID"),
        (
            {"coordinator": "h", "num_processes": 2, "process_id": 0},
            {},
            "coordinator (argument coordinator) must be host:port",
        ),
        (
            {},
            {"RESFLOW_COORDINATOR": "h:x", "RESFLOW_NUM_PROCESSES": "2", "RESFLOW_PROCESS_ID": "0"},
            "RESFLOW_COORDINATOR",
        ),
        (
            {"coordinator": "h:1", "num_processes": "two", "process_id": 0},
            {},
            "num_processes (argument num_processes) must be an integer",
        ),
        (
            {"coordinator": "h:1", "num_processes": 0, "process_id": 0},
            {},
            "num_processes (argument num_processes) must be >= 1",
        ),
        (
            {"coordinator": "h:1", "num_processes": 2, "process_id": 2},
            {},
            "process_id (argument process_id) must be in [0, 2)",
        ),
        (
            {},
            {"RESFLOW_COORDINATOR": "h:1", "RESFLOW_NUM_PROCESSES": "2", "RESFLOW_PROCESS_ID": "-1"},
            "RESFLOW_PROCESS_ID) must be in",
        ),
        ({"coordinator": "h:1", "num_processes": 2.5, "process_id": 0}, {}, "must be an integer, got 2.5"),
    ],
)
def test_bad_or_missing_settings_name_the_setting(args, env, message):
    with pytest.raises(ValueError) as e:
        dist.resolve(**args, env=env)
    assert message in str(e.value)


def _cluster_variables() -> list[str]:
    """The variables of this environment that a cluster scheduler or resflow would have set."""
    drop = ("SLURM_", "OMPI_", "PMI_", "RESFLOW_", "TPU_", "KUBERNETES_", "MEGASCALE_")
    return [k for k in os.environ if k.startswith(drop)]


def _clean_env() -> dict:
    """This environment without any cluster or RESFLOW_* variables (so nothing is detected)."""
    env = {k: v for k, v in os.environ.items() if k not in _cluster_variables()}
    return env | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}


def test_no_settings_and_no_cluster_names_the_variables():
    # A fresh process (JAX refuses to initialize after any computation); the module is loaded
    # from its file, as it needs only jax, so the process starts fast.
    code = (
        "import importlib.util as u\n"
        f"s = u.spec_from_file_location('d', {DIST_FILE!r})\n"
        "d = u.module_from_spec(s); s.loader.exec_module(d)\n"
        "try:\n    d.initialize()\nexcept ValueError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert "no cluster detected" in out.stdout, out.stderr
    for var in dist.ENV.values():
        assert var in out.stdout


WORKER = textwrap.dedent(
    """
    import importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("dist", sys.argv[2])  # only jax needed: start fast
    dist = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dist)
    cluster = dist.initialize()  # every setting from RESFLOW_* in the environment
    import jax, jax.numpy as jnp, numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()), ("runs",))
    mine = np.arange(6.0).reshape(3, 2) + 100 * cluster.process_id  # this process's 3 rows
    x = multihost_utils.host_local_array_to_global_array(mine, mesh, P("runs"))
    y = jax.jit(lambda a: jnp.tanh(a) * 2 + a.sum())(x)  # one program over both processes
    full = dist.gather({"x": x, "y": y})
    rows = dist.gather_objects({"process": cluster.process_id, "rows": mine.tolist(), "text": "é" * cluster.process_id})
    if dist.is_main():
        json.dump({"cluster": list(cluster), "devices": jax.device_count(), "local": jax.local_device_count(),
                   "sharded": not x.is_fully_addressable, "x": full["x"].tolist(), "y": full["y"].tolist(),
                   "rows": rows}, open(sys.argv[1], "w"))
    jax.distributed.shutdown()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_on_localhost_gather_to_process_0(tmp_path):
    out = tmp_path / "result.json"
    procs, port = [], free_port()
    for i in range(2):
        env = _clean_env() | {
            "RESFLOW_COORDINATOR": f"127.0.0.1:{port}",
            "RESFLOW_NUM_PROCESSES": "2",
            "RESFLOW_PROCESS_ID": str(i),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(out) if i == 0 else str(tmp_path / "never.json"), DIST_FILE],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    got = json.loads(out.read_text())
    assert not (tmp_path / "never.json").exists()  # only process 0 writes
    assert got["cluster"] == [f"127.0.0.1:{port}", 2, 0]
    assert (got["devices"], got["local"], got["sharded"]) == (2, 1, True)
    # Reference: the same global array and program in numpy.
    x = np.concatenate([np.arange(6.0).reshape(3, 2) + 100 * i for i in range(2)])
    np.testing.assert_array_equal(got["x"], x)
    np.testing.assert_allclose(got["y"], np.tanh(x) * 2 + x.sum(), rtol=1e-6)
    assert got["rows"] == [{"process": i, "rows": (x[3 * i : 3 * i + 3]).tolist(), "text": "é" * i} for i in range(2)]
