"""Publish a new version the way a training pipeline should: save, then rename it in.

    python examples/publish_version.py examples/models/half_plus_two 2 --offset 3

writes `y = 0.5 * x + offset` (signature `serving_default`, input `x`, output `y`, like the
bundled half_plus_two) to a staging folder beside the base path, then renames it to
`<base_path>/<version>`: one atomic step, so modelswap never sees half a model.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import tensorflow as tf


class HalfPlus(tf.Module):
    def __init__(self, offset: float) -> None:
        super().__init__()
        self.slope = tf.Variable(0.5)
        self.offset = tf.Variable(offset)

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": x * self.slope + self.offset}


def publish(base_path: Path, version: int, offset: float) -> Path:
    """Export into a staging folder on the same file system, then rename it into place."""
    base_path.mkdir(parents=True, exist_ok=True)
    target = base_path / str(version)
    if target.exists():
        raise SystemExit(f"{target} exists: versions are immutable, publish a new number")
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{version}-", dir=base_path.parent))
    module = HalfPlus(offset)
    tf.saved_model.save(module, str(staging / "model"),
                        signatures={"serving_default": module.serve})
    os.replace(staging / "model", target)
    staging.rmdir()
    return target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_path", type=Path)
    parser.add_argument("version", type=int)
    parser.add_argument("--offset", type=float, default=3.0, help="default 3: y = 0.5 x + 3")
    args = parser.parse_args()
    print(publish(args.base_path, args.version, args.offset))
