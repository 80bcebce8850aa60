"""A local Ray Serve on 127.0.0.1 running 3 replicas of the example `SwapDeployment`.

One Ray cluster for the module. Deployed from a Serve config, as `serve run config.yaml`
does: requests through a Serve handle report the version; a publish reaches every replica
with 0 failed requests; a new `user_config` is applied in place (same replicas, same
processes); every replica's status object feeds `modelswap fleet status`. From a moto S3
bucket: a canary at 34% is served by exactly the replicas the hash picks, abort and promote
converge, with a background caller seeing 0 failed requests throughout.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import modelswap
from fleet.fleet_helpers import cli, table, wait_for
from modelswap.fleet.cli import add_fleet_parsers
from modelswap.fleet.rollout import serves_canary

serve = pytest.importorskip("ray.serve")

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "ray"
REPLICAS = 3
TIMEOUT = 90.0


def app_config(base: Path | dict[str, Any], user_config: dict[str, Any] | None = None,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """A Serve config with one application: the example, 3 replicas, no HTTP proxy; `base`
    is the base path, or the application's `args`."""
    daemon = Path(modelswap.__file__).resolve().parents[1]
    deployment: dict[str, Any] = {"name": "HalfPlusTwo", "num_replicas": REPLICAS,
                                  "ray_actor_options": {"num_cpus": 0},
                                  "health_check_period_s": 1}
    if user_config is not None:
        deployment["user_config"] = user_config
    return {"proxy_location": "Disabled", "applications": [{
        "name": "fleet", "route_prefix": None, "import_path": "serve_half_plus_two:app",
        "args": base if isinstance(base, dict) else {"base_path": str(base),
                                                     "fleet_status": True},
        # the package under test and the example, on every replica's path
        "runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join(
            [str(daemon), str(EXAMPLE), os.environ.get("PYTHONPATH", "")]),
            "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}},
        "deployments": [deployment]}]}


def deploy(config: dict[str, Any]) -> Any:
    """What `serve run config.yaml` does; returns the application's handle."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    _get_global_client().deploy_apps(ServeDeploySchema.model_validate(config), _blocking=True)
    deadline = time.monotonic() + TIMEOUT
    while serve.status().applications["fleet"].status != "RUNNING":
        assert time.monotonic() < deadline, serve.status().applications["fleet"]
        time.sleep(0.2)  # polling Serve's status: nothing to wait on instead
    return serve.get_app_handle("fleet")


@pytest.fixture(scope="module")
def ray_serve() -> Iterator[None]:
    import ray

    # Ray 2.60 turns _node_ip_address="127.0.0.1" into the host's routable address (and
    # then binds its servers to every interface) unless single-node mode is forced.
    from ray._private import ray_constants

    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's own processes
    mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # this one imported Ray already
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=2,
             log_to_driver=False, configure_logging=False)
    try:
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        serve.start(proxy_location="Disabled")
        yield
    finally:
        serve.shutdown()
        ray.shutdown()
        mp.undo()


class Survey:
    """Calls the application until each replica's latest answer meets a condition."""

    def __init__(self, handle: Any, answer: Callable[[int], float] | None = None) -> None:
        self.handle = handle
        self.answer = answer or (lambda version: 0.5 + {1: 2.0, 2: 3.0}[version])
        self.latest: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.failures: list[str] = []

    def until(self, pred: Any, what: str) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + TIMEOUT
        while not (len(self.latest) == REPLICAS and all(map(pred, self.latest.values()))):
            assert time.monotonic() < deadline, f"{what}: {self.latest} {self.failures[:3]}"
            for response in [self.handle.remote(1.0) for _ in range(4 * REPLICAS)]:
                self.calls += 1
                try:
                    answer = response.result(timeout_s=TIMEOUT)
                except Exception as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                assert answer["y"] == self.answer(answer["version"]), answer
                self.latest[answer["member"]] = answer
        return dict(self.latest)


def fleet_status(base: Path) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="modelswap")
    add_fleet_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fleet", "status", str(base)])
    out: list[str] = []
    return args.func(args, out=out.append, err=out.append), "\n".join(out)


def test_replicas_follow_publish_and_reconfigure_in_place(ray_serve: None, tmp_path: Path,
                                                          exports: Any) -> None:
    base = tmp_path / "half_plus_two"
    base.mkdir()
    exports.publish(base, 1, 2.0)  # y = 0.5 x + 2, like the bundled half_plus_two
    survey = Survey(deploy(app_config(base)))

    first = survey.until(lambda a: a["version"] == 1, "every replica serves v1")
    members = sorted(first)
    assert len(members) == REPLICAS and all(m.startswith("HalfPlusTwo#") for m in members)
    code, out = fleet_status(base)
    assert code == 0, out
    assert sorted(line.split()[0] for line in out.splitlines()[2:]) == members

    exports.publish(base, 2, 3.0)  # y = 0.5 x + 3
    survey.until(lambda a: a["version"] == 2, "every replica serves v2 after the publish")
    assert survey.failures == []

    pinned = {"models": [{"name": "half_plus_two", "base_path": str(base),
                          "version_policy": {"specific": [1]}}],
              "service": {"require": "all"}}
    survey.handle = deploy(app_config(base, pinned))
    after = survey.until(lambda a: a["version"] == 1, "every replica back on v1 by reconfigure")
    assert survey.failures == []
    assert sorted(after) == members  # in place: a restarted replica would have a new id

    def converged() -> bool:
        code, out = fleet_status(base)
        return code == 0 and all(line.split()[2] == "1" for line in out.splitlines()[2:])

    deadline = time.monotonic() + TIMEOUT
    while not converged():  # status objects are written within a second of each change
        assert time.monotonic() < deadline, fleet_status(base)[1]
        time.sleep(0.2)
    print(fleet_status(base)[1], f"\n{survey.calls} calls, 0 failed")

    serve.delete("fleet")  # replicas stopped on purpose remove their status objects
    while any((base / "_fleet").iterdir()):
        assert time.monotonic() < deadline + TIMEOUT, list((base / "_fleet").iterdir())
        time.sleep(0.2)


class Caller(threading.Thread):
    """Calls the application through its handle in the background, counting failures
    (errors and wrong answers) and answers by version."""

    def __init__(self, handle: Any, answer: Callable[[int], float]) -> None:
        super().__init__(daemon=True, name="test-ray-caller")
        self.handle, self.answer = handle, answer
        self.by_version: dict[int, int] = {}
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                answer = self.handle.remote(1.0).result(timeout_s=TIMEOUT)
                if answer["y"] != self.answer(answer["version"]):
                    self.failures.append(f"wrong answer {answer}")
                self.by_version[answer["version"]] = self.by_version.get(answer["version"],
                                                                         0) + 1
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")

    def stop(self) -> int:
        self.halt.set()
        self.join(TIMEOUT)
        return sum(self.by_version.values())


def test_replicas_follow_an_s3_rollout(ray_serve: None, tmp_path: Path, s3_url: str,
                                       exports: Any) -> None:
    from modelswap.watch.remote import publish

    def answer(version: int) -> float:  # version N answers 0.5 x + N + 1
        return 0.5 + version + 1.0

    publish(exports.get(2.0), s3_url, 1)
    cache = tmp_path / "cache"
    config = {"models": [{"name": "half_plus_two", "base_path": s3_url}],
              "remote": {"cache_dir": str(cache), "poll_interval": 0.5},
              "service": {"require": "all"}}
    env = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                      "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
    handle = deploy(app_config({"config": config, "fleet_status": True}, env=env))
    survey = Survey(handle, answer)
    caller = Caller(handle, answer)
    caller.start()
    try:
        members = sorted(survey.until(lambda a: a["version"] == 1, "every replica serves v1"))
        canary = {m for m in members if serves_canary(m, "half_plus_two", 34)}

        def converged(want: dict[str, int]) -> None:
            survey.until(lambda a: a["version"] == want[a["member"]], f"replicas: {want}")

            def shown() -> bool:
                code, out = cli("fleet", "status", s3_url)
                return code == 0 and {m: v for m, (v, _) in table(out).items()} == {
                    m: str(v) for m, v in want.items()}

            wait_for(shown, f"fleet status shows {want}")

        converged(dict.fromkeys(members, 1))
        publish(exports.get(3.0), s3_url, 2)  # a publish reaches every replica
        converged(dict.fromkeys(members, 2))

        assert cli("rollout", s3_url, "--stable", "2")[0] == 0
        publish(exports.get(4.0), s3_url, 3)
        split = {m: 3 if m in canary else 2 for m in members}
        code, out = cli("rollout", s3_url, "--canary", "3", "--percent", "34")
        assert code == 0 and "stable 2, canary 3 on 34%" in out, out
        converged(split)  # exactly the replicas the hash picks serve the canary
        assert cli("rollout", s3_url, "--abort")[0] == 0
        converged(dict.fromkeys(members, 2))
        assert cli("rollout", s3_url, "--canary", "3", "--percent", "34")[0] == 0
        converged(split)
        assert cli("rollout", s3_url, "--promote")[0] == 0
        converged(dict.fromkeys(members, 3))
    finally:
        calls = caller.stop()
    assert caller.failures == [] and survey.failures == []
    assert set(caller.by_version) == {1, 2, 3}
    print(cli("fleet", "status", s3_url)[1], f"\ncanary replicas {sorted(canary)}; "
          f"{calls} background calls, {survey.calls} survey calls, 0 failed")

    serve.delete("fleet")  # stopped on purpose: status objects and cache folders go
    wait_for(lambda: "no member status objects" in cli("fleet", "status", s3_url)[1],
             "status objects removed")
    wait_for(lambda: not any((cache / "replicas").iterdir()), "replica caches removed")
