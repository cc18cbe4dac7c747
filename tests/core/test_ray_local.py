"""`--ray local` starts a cluster of its own, whatever cluster this machine or $RAY_ADDRESS names."""

import os
import subprocess
import sys

SAY_CLUSTER = (
    "from kaggle_kit.core import ray_jobs\n"
    "ray = ray_jobs.connect('local')\n"
    "print('CPUs', int(ray.cluster_resources()['CPU']))\n"
)


def test_ray_local_starts_its_own_cluster_even_where_ray_address_names_another():
    """With $RAY_ADDRESS (or a `ray start` cluster) pointing elsewhere, `local` used to pass address=None to
    ray.init, which joins that cluster instead of starting one in the command, as docs/distributed.md says."""
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9", "OMP_NUM_THREADS": "1"}  # nothing listens on port 9
    done = subprocess.run([sys.executable, "-c", SAY_CLUSTER], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CPUs" in done.stdout
