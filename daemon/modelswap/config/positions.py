"""YAML with line numbers: every key path maps to the line it was read from."""

from __future__ import annotations

from typing import Any

import yaml

from modelswap.errors import ConfigError

KeyPath = tuple[Any, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (no billion laughs, unambiguous line numbers)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not supported", event.start_mark)
        return super().compose_node(parent, index)


def render(path: KeyPath) -> str:
    """('models', 0, 'version_policy') -> 'models[0].version_policy'."""
    out = "".join(f"[{p}]" if isinstance(p, int)
                  else f"[{p!r}]" if not str(p).isprintable()  # e.g. '\n': keep one line
                  else f".{p}" for p in path)
    return out[1:] if out.startswith(".") else out


def _index(loader: _Loader, root: yaml.Node, source: str) -> dict[KeyPath, int]:
    """Map key paths to 1-based lines (a mapping entry -> its key's line); reject dup keys."""
    lines: dict[KeyPath, int] = {(): root.start_mark.line + 1}
    stack: list[tuple[KeyPath, yaml.Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE_TAG:
                    raise ConfigError("YAML merge keys (<<) are not supported", file=source,
                                      line=line, key=render(path) or None)
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # the constructor rejects unhashable keys with a mark
                key = loader.construct_object(key_node)
                sub = (*path, key if isinstance(key, str) else str(key))
                if key in seen:
                    raise ConfigError(f"duplicate key {key!r}", file=source, line=line,
                                      key=render(sub))
                seen.add(key)
                lines[sub] = line
                stack.append((sub, value_node))
        elif isinstance(node, yaml.ScalarNode) and len(node.value) > 1000 \
                and node.tag == "tag:yaml.org,2002:int":
            raise ConfigError("integer is too large", file=source,
                              line=node.start_mark.line + 1, key=render(path) or None)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = (*path, i)
                lines[sub] = item.start_mark.line + 1
                stack.append((sub, item))
    return lines


def load_yaml(text: str, source: str) -> tuple[object, dict[KeyPath, int]]:
    """The document and its key-path → line map; any failure is a `ConfigError`."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        if root is None:
            return None, {}
        lines = _index(loader, root, source)
        return loader.construct_document(root), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(" ".join(str(p).split()) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"invalid YAML: {message or 'syntax error'}", file=source,
                          line=mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as exc:
        raise ConfigError(f"invalid YAML: character #x{exc.character:04x}: {exc.reason}",
                          file=source, line=text.count("\n", 0, exc.position) + 1) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", file=source) from None
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        raise ConfigError(f"invalid YAML: {' '.join(str(exc).split())}", file=source) from None
    finally:
        if loader is not None:
            loader.dispose()


def line_for(loc: KeyPath, lines: dict[KeyPath, int]) -> int | None:
    """The line of the longest prefix of `loc` that was read from the file."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
