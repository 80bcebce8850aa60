"""Models exported at bench time (in a child process, so Keras never enters the measured
process), and publishing versions into a base path the safe way (stage, then rename).

Each kind is exported a few times with different weights, so that consecutive versions are
never byte-identical (issue 5's identical-version reuse would otherwise skip the load).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BIG_QUICK = "20-block CNN (ResNet50 stand-in for --quick)"
_counter = itertools.count()


def export_all(root: Path, quick: bool) -> tuple[dict[str, list[Path]], str]:
    """Export tiny, dense (~20 MB) and big models under `root`; returns (exports, big label)."""
    cmd = [sys.executable, "-m", "bench.models", str(root)] + (["--quick"] if quick else [])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    here = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"model export failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    exports = {k: [Path(p) for p in v] for k, v in result["exports"].items()}
    return exports, str(result["big_label"])


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def publish(source: Path, base: Path, version: int) -> float:
    """Hard-link `source` into a staging folder beside `base`, rename it to `base/version`.

    Returns `time.perf_counter()` right after the rename (the publish instant).
    """
    staging = base.parent / f".staging-{base.name}-{version}-{next(_counter)}"
    shutil.copytree(source, staging, copy_function=os.link)
    os.replace(staging, base / str(version))
    return time.perf_counter()


def remove_version(base: Path, version: int) -> None:
    shutil.rmtree(base / str(version), ignore_errors=True)


# -- the child process ----------------------------------------------------------------------
def _export_keras(model: object, path: Path) -> None:
    model.export(str(path), format="tf_saved_model", verbose=False)  # type: ignore[attr-defined]


def _dense(seed: int) -> object:
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((256,), name="x")
    h = keras.layers.Dense(1408, activation="relu")(inp)
    h = keras.layers.Dense(1408, activation="relu")(h)
    return keras.Model(inp, keras.layers.Dense(16)(h))


def _cnn(seed: int, blocks: int = 20) -> object:
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((64, 64, 3), name="x")
    h = inp
    for i in range(blocks):
        h = keras.layers.Conv2D(32 if i < blocks // 2 else 64, 3, padding="same")(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inp, keras.layers.Dense(10)(h))


def _resnet(seed: int) -> object:
    import keras

    keras.utils.set_random_seed(seed)
    # a named input: Keras otherwise numbers it per process (keras_tensor_9, _186, ...), and
    # versions whose input names differ break the signature contract (issue 5)
    return keras.applications.ResNet50(weights=None,
                                       input_tensor=keras.Input((224, 224, 3), name="x"))


def _child(root: Path, quick: bool) -> None:
    from modelswap.cli.demo import export_linear
    from modelswap.service.logs import quiet_tensorflow

    quiet_tensorflow()
    root.mkdir(parents=True, exist_ok=True)
    exports: dict[str, list[str]] = {"tiny": [], "dense": [], "big": []}
    for i in range(3):
        exports["tiny"].append(str(export_linear(root / f"tiny-{i}", 0.5, float(i))))
        _export_keras(_dense(i), root / f"dense-{i}")
        exports["dense"].append(str(root / f"dense-{i}"))
    big, label = (_cnn, BIG_QUICK) if quick else (_resnet, "ResNet50")
    for i in range(2):
        _export_keras(big(i), root / f"big-{i}")
        exports["big"].append(str(root / f"big-{i}"))
    print(json.dumps({"exports": exports, "big_label": label}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="export the bench models (child process)")
    parser.add_argument("root", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    _child(args.root, args.quick)
