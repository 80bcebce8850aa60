"""Serve the bundled half_plus_two from Ray Serve replicas that each embed a ModelSwap.

    pip install 'modelswap[ray]'
    python examples/ray/serve_half_plus_two.py

Starts a local Ray on 127.0.0.1 (no dashboard, no HTTP proxy: requests go through a Serve
handle), deploys 2 replicas over a copy of examples/models/half_plus_two, calls them,
publishes version 2 (`y = 0.5 x + 3`) and waits until every replica answers with it.

For a cluster, deploy it from a Serve config instead (`serve_config.yaml` beside this file:
`serve deploy serve_config.yaml`, or KubeRay's RayService). Changing a deployment's
`user_config` there is applied in place by `SwapDeployment.reconfigure` (a modelswap
reload: no replica restart). `serve.run` from Python always replaces the replicas.
"""

from __future__ import annotations

import os

# Single-node mode, read when Ray is imported: otherwise Ray 2.60 replaces 127.0.0.1 by the
# host's routable address and its servers listen on every interface.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tensorflow as tf
from ray import serve

from modelswap.ray import SwapDeployment

HERE = Path(__file__).resolve().parent


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0}, health_check_period_s=2)
class HalfPlusTwo(SwapDeployment):
    """Plain Ray Serve code: the swap hands out the served version per request."""

    def __call__(self, x: float) -> dict[str, Any]:
        with self.swap.acquire("half_plus_two") as served:
            y = served.signatures["serving_default"](x=tf.constant([[x]]))["y"]
            return {"member": self.member, "version": served.version, "y": float(y[0][0])}


def config_yaml(base_path: Path | str, extra: str = "") -> str:
    return (f"models:\n  - name: half_plus_two\n    base_path: {base_path}\n{extra}"
            "service:\n  require: all\n")


def app(args: dict[str, Any]) -> Any:
    """The application builder a Serve config names (`import_path: serve_half_plus_two:app`):
    `args.base_path` (a folder or `s3://...`), or `args.config` (a whole modelswap config
    mapping, e.g. with a `remote:` section), and `args.fleet_status` (write
    `_fleet/<member>.json`)."""
    config = args.get("config") or config_yaml(args["base_path"])
    return HalfPlusTwo.bind(config, fleet_status=bool(args.get("fleet_status", False)))


def answers(handle: Any, replicas: int, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """Each replica's latest answer to x=1.0 (calls until every replica has answered)."""
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < replicas:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {sorted(seen)} answered in {timeout}s")
        for response in [handle.remote(1.0) for _ in range(4 * replicas)]:
            answer = response.result(timeout_s=timeout)
            seen[answer["member"]] = answer
    return seen


def wait_for_version(handle: Any, replicas: int, version: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while {a["version"] for a in answers(handle, replicas).values()} != {version}:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every replica serves version {version}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    import ray

    sys.path.insert(0, str(HERE.parent))
    from publish_version import publish

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "half_plus_two"
        shutil.copytree(HERE.parent / "models" / "half_plus_two", base)
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=2,
                 log_to_driver=False)
        try:
            serve.start(proxy_location="Disabled")
            application = HalfPlusTwo.options(num_replicas=args.replicas).bind(config_yaml(base))
            handle = serve.run(application, name="half_plus_two", route_prefix=None)
            for member, answer in sorted(answers(handle, args.replicas).items()):
                print(f"{member}: v{answer['version']} y(1.0) = {answer['y']}")
            publish(base, 2, 3.0)
            wait_for_version(handle, args.replicas, 2)
            print("published version 2: every replica serves it")
        finally:
            serve.shutdown()
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
