"""`load_options` from the YAML reach every `tf.saved_model.load` of the model; a TF1
SavedModel served with them can be pruned to a feed/fetch function."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from conftest import Exports, export_tf1, predict, yaml_for


def test_load_options_reach_the_load(tmp_path: Path, exports: Exports, run_swap: Any) -> None:
    plain, skipped = tmp_path / "plain", tmp_path / "skipped"
    for base in (plain, skipped):
        base.mkdir()
        exports.publish(base, 1, 1.0)
    text = yaml_for(plain, name="plain", extra="load_options: "
                    "{experimental_io_device: /job:localhost, allow_partial_checkpoint: true}")
    text += "".join(f"{line}\n" for line in yaml_for(
        skipped, name="skipped", extra="load_options: {experimental_skip_checkpoint: true}"
    ).splitlines()[1:])
    swap, _ = run_swap(text)
    swap.wait_until_available("plain", timeout=60)
    swap.wait_until_available("skipped", timeout=60)
    with swap.acquire("plain") as served:
        assert predict(served) == 2.0  # 0.5 * 2 + 1
    with swap.acquire("skipped") as served:
        # the variables were never restored from the checkpoint: no answer
        y = served.signatures["serving_default"](x=tf.constant([[2.0]]))["y"]
        assert y.shape == (1, 0)


def test_tf1_model_pruned_to_feeds_and_fetches(tmp_path: Path, run_swap: Any) -> None:
    base = tmp_path / "tf1"
    export_tf1(base / "1", {("serve",): 0.0})  # y = x + v, v = 1.0
    swap, _ = run_swap(yaml_for(base, "load_options: {allow_partial_checkpoint: true}"))
    swap.wait_until_available("m", timeout=60)
    with swap.acquire("m") as served:
        fn = served.model.prune(feeds="x:0", fetches="y:0")
        assert float(fn(tf.constant([[2.0]]))[0][0]) == 3.0
