"""Reading `saved_model.pb` without loading the model: the MetaGraph for a tag set, the
assets it names, whether it needs variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import text_format

PB, PBTXT = "saved_model.pb", "saved_model.pbtxt"
_VARIABLE_OPS = frozenset({"VarHandleOp", "VariableV2", "Variable"})


def parse_saved_model(path: Path) -> Any:
    """The `SavedModel` proto in `path` (binary or text). Raises OSError, or
    `google.protobuf.message.DecodeError` / `text_format.ParseError` / `UnicodeDecodeError`."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    data = path.read_bytes()
    if path.name == PBTXT:
        text_format.Parse(data.decode("utf-8"), proto)
    else:
        proto.ParseFromString(data)
    return proto


def needs_variables(meta_graph: Any) -> bool:
    """The MetaGraph reads a checkpoint (TF2 variables, a TF1 saver or variable ops)."""
    if any(node.WhichOneof("kind") == "variable" for node in meta_graph.object_graph_def.nodes):
        return True
    if meta_graph.saver_def.filename_tensor_name:
        return True
    return any(node.op in _VARIABLE_OPS for node in meta_graph.graph_def.node)


def asset_files(meta_graph: Any) -> list[str]:
    """The files under `assets/` the MetaGraph names (vocabularies, tokenizer models)."""
    return sorted({a.filename for a in meta_graph.asset_file_def if a.filename})
