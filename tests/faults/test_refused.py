"""Models TensorFlow (or the config) refuses, and TF1 models TensorFlow 2 still loads."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from faults.helpers import Scene, export_tf1_model
from modelswap import State


def publish_tf1(s: Scene, version: int, tmp: Path, **kwargs: object) -> None:
    staging = tmp / f"tf1-{version}"
    export_tf1_model(staging, **kwargs)  # type: ignore[arg-type]
    os.replace(staging, s.base / str(version))


def test_wrong_tags(scene: Callable[..., Scene], tmp_path: Path) -> None:
    s = scene()
    publish_tf1(s, 2, tmp_path, tags=("train",))
    status = s.wait_status(2, State.ERROR, "TagMismatch")
    assert "no MetaGraph has tags ['serve']; the model has ['train']" in (status.error or "")
    assert State.LOADING not in s.events.states(2)
    s.keeps_answering(1)
    s.publish(3)
    s.serves(3)
    s.finish()


def test_missing_required_signature(scene: Callable[..., Scene], tmp_path: Path) -> None:
    s = scene("signatures: [serving_default]")
    # a TF1 model whose only signature has another name: its inputs break no contract
    # (a whole signature may go), but the config requires serving_default
    publish_tf1(s, 2, tmp_path, signature="predict")
    status = s.wait_status(2, State.ERROR, "SignatureMismatch")
    assert "missing required signature(s) ['serving_default']" in (status.error or "")
    assert "['predict']" in (status.error or "")
    s.keeps_answering(1)
    s.publish(3)
    s.serves(3)
    s.finish()


def test_tf1_reference_variables_load_in_tf2(scene: Callable[..., Scene],
                                             tmp_path: Path) -> None:
    """The issue expected TF2's loader to refuse a TF1 model with reference variables
    (`use_resource=False`); TensorFlow 2.21 loads it (with a warning) and it answers right,
    so modelswap serves it like any other good version."""
    s = scene()
    publish_tf1(s, 2, tmp_path, add=0.0, resource=False)  # y = x + 1 → 3.0 at x = 2
    s.expect(2, 2.0)
    s.serves(2)
    assert s.events.states(2) == [State.LOADING, State.AVAILABLE]
    s.publish(3)
    s.serves(3)
    s.finish()
