"""Read what the remote gate and the manifest need from `saved_model.pb` bytes.

TensorFlow's protos are imported on first use (importing them imports TensorFlow).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from google.protobuf import text_format
from google.protobuf.message import DecodeError

if TYPE_CHECKING:
    from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

__all__ = ["PB_NAMES", "SavedModelError", "asset_files", "meta_graph", "parse", "tag_sets"]

PB_NAMES = ("saved_model.pb", "saved_model.pbtxt")


class SavedModelError(ValueError):
    """The bytes are not a SavedModel, or it lacks the configured tag set."""


def parse(data: bytes, *, text: bool = False) -> saved_model_pb2.SavedModel:
    """Parse `saved_model.pb` (or, with `text`, `saved_model.pbtxt`) bytes."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    try:
        if text:
            text_format.Parse(data.decode("utf-8"), model)
        else:
            model.ParseFromString(data)
    except (DecodeError, text_format.ParseError, UnicodeDecodeError) as e:
        raise SavedModelError(f"does not parse as a SavedModel: {e}") from None
    if not model.meta_graphs:
        raise SavedModelError("has no MetaGraph")
    return model


def tag_sets(model: saved_model_pb2.SavedModel) -> list[list[str]]:
    """Each MetaGraph's tag set, sorted."""
    return [sorted(mg.meta_info_def.tags) for mg in model.meta_graphs]


def meta_graph(model: saved_model_pb2.SavedModel,
               tags: Collection[str]) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraph whose tag set equals `tags`; `SavedModelError` names the ones there are."""
    wanted = set(tags)
    for mg in model.meta_graphs:
        if set(mg.meta_info_def.tags) == wanted:
            return mg
    raise SavedModelError(f"no MetaGraph with tags {sorted(wanted)}; "
                          f"it has {tag_sets(model)}")


def asset_files(graph: Any) -> list[str]:
    """The asset files a MetaGraph names, relative to the version folder (`assets/…`)."""
    return sorted({f"assets/{a.filename}" for a in graph.asset_file_def if a.filename})
