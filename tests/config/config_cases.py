"""Generated configuration documents (valid, near-valid, garbage) and the properties every
one must keep: `parse_config` and `ModelSwap.from_yaml` succeed or raise `ConfigError`
(nothing else), and `modelswap check` exits 0 (printing `ok`) or 2 with one line on stderr,
never a traceback.

Used by tests/test_config.py (a few hundred cases in-process, a few dozen `modelswap check`
processes) and by `bench/soak.py --config-cases N` (thousands).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from modelswap import ConfigError, ModelSwap
from modelswap.cli import main as cli_main
from modelswap.config import Config, parse_config

SOURCE = "fuzz.yaml"
# hooks and consumers name importable code: only these (others would import anything)
SAFE_CODE = ["json:dumps", "os.path:join", "math:sqrt", "no_such_module_xyz:fn",
             "json:no_such_function", "json:__doc__"]
SCARY_MODULES = frozenset({"antigravity", "this", "__hello__", "__phello__", "idlelib",
                           "turtle", "tkinter", "pty", "webbrowser"})

# -- valid documents ----------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,11}", fullmatch=True)
paths = st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]),
                min_size=1, max_size=20)
duration_text = st.sampled_from(["200ms", "2s", "1.5 s", "5m", "1h", ".5s", "10", "0.25"])
durations = st.one_of(st.integers(0, 10**6), st.floats(0, 1e6), duration_text)
positive_durations = st.one_of(st.integers(1, 10**6), st.floats(0.001, 1e6), duration_text)
sizes = st.one_of(st.integers(1, 2**40), st.sampled_from(["512MB", "2GiB", "1.5 GB", "64k"]))
policies = st.one_of(
    st.just("all"),
    st.integers(1, 9).map(lambda n: {"latest": n}),
    st.lists(st.integers(1, 2**63 - 1), min_size=1, max_size=4).map(lambda v: {"specific": v}),
)
model_options: dict[str, st.SearchStrategy[Any]] = {
    "tags": st.lists(st.sampled_from(["serve", "gpu", "tpu"]), min_size=1, max_size=3),
    "version_policy": policies,
    "labels": st.dictionaries(names, st.integers(1, 1000), max_size=2),
    "signatures": st.lists(st.sampled_from(["serving_default", "predict"]), max_size=2),
    "marker": st.sampled_from(["_SUCCESS", "DONE", "ready.txt"]),
    "trust": st.one_of(st.booleans(), st.fixed_dictionaries({}, optional={
        "owners": st.lists(st.sampled_from(["root", 0, 1001, "group:0", "group:1500"]),
                           max_size=3),
        "group_writable_by": st.lists(st.sampled_from([0, "root", 1500]), max_size=2)})),
    "load_options": st.fixed_dictionaries({}, optional={
        "allow_partial_checkpoint": st.booleans(),
        "experimental_io_device": st.sampled_from(["/job:localhost", "/device:CPU:0"]),
        "experimental_variable_policy": st.sampled_from(
            [None, "save_variable_devices", "expand_distributed_variables"]),
        "experimental_load_function_aliases": st.booleans(),
        "experimental_skip_checkpoint": st.booleans()}),
    "warmup": st.sampled_from(["auto", "off", False, "json:dumps"]),
    "warmup_timeout": positive_durations,
    "contract": st.sampled_from(["inputs", "signatures", "off", False]),
}
sections: dict[str, st.SearchStrategy[Any]] = {
    "watch": st.fixed_dictionaries({}, optional={
        "mode": st.sampled_from(["auto", "inotify", "poll"]),
        "poll_interval": positive_durations, "rescan_interval": positive_durations,
        "settle": durations}),
    "loader": st.fixed_dictionaries({}, optional={
        "threads": st.integers(1, 16), "max_retries": st.integers(0, 10),
        "retry_interval": durations, "load_timeout": durations,
        "swap_policy": st.sampled_from(["availability", "resource"]),
        "memory_policy": st.sampled_from(["fallback", "refuse", "ignore"]),
        "memory_factor": st.floats(0.1, 100), "memory_limit": sizes,
        "gc_freeze": st.booleans()}),
    "service": st.fixed_dictionaries({}, optional={
        "require": st.sampled_from(["all", "any", "none"]),
        "start_timeout": durations,
        "stop_timeout": durations}),
    "logging": st.fixed_dictionaries({}, optional={
        "level": st.sampled_from(["debug", "info", "warning", "error"]),
        "format": st.sampled_from(["auto", "json", "console"])}),
    "http": st.fixed_dictionaries({}, optional={
        "listen": st.sampled_from(["127.0.0.1:0", "[::1]:8501", "localhost:9000"])}),
    "hooks": st.fixed_dictionaries({}, optional={
        key: st.lists(st.sampled_from(SAFE_CODE[:3]), max_size=2)
        for key in ("on_loading", "on_available", "on_error", "on_retired")}),
    "consumers": st.lists(st.sampled_from(SAFE_CODE[:3]), max_size=2),
}


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    models = draw(st.lists(st.fixed_dictionaries({"name": names, "base_path": paths},
                                                 optional=model_options),
                           min_size=1, max_size=3, unique_by=lambda m: m["name"]))
    doc: dict[str, Any] = {"models": models}
    for key in draw(st.lists(st.sampled_from(sorted(sections)), unique=True, max_size=4)):
        doc[key] = draw(sections[key])
    return doc


# -- near-valid: one mistake in a valid document ------------------------------------------

def _places(node: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a document."""
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((node, key))
            _places(value, found)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.append((node, i))
            _places(value, found)
    return found


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                    st.sampled_from(["-1s", "5 parsecs", "1e400", "nan", "", "0", "2**70",
                                     "99999999999999999999999", "[]", "{}", "~"]))


@st.composite
def near_valid_texts(draw: st.DrawFn) -> str:
    doc = draw(valid_documents())
    mistake = draw(st.sampled_from(["drop", "retype", "typo", "unknown", "duplicate name",
                                    "truncate", "insert", "duplicate key", "indent"]))
    places = _places(doc, [])
    container, key = places[draw(st.integers(0, len(places) - 1))]
    if mistake == "drop":
        del container[key]
    elif mistake == "retype":
        container[key] = draw(st.one_of(scalars, st.lists(scalars, max_size=2),
                                        st.dictionaries(st.text(max_size=4), scalars,
                                                        max_size=2)))
    elif mistake == "typo" and isinstance(container, dict) and isinstance(key, str) and key:
        i = draw(st.integers(0, len(key) - 1))
        container[key[:i] + key[i + 1:] + draw(st.sampled_from(["", "s", "_"]))] = (
            container.pop(key))
    elif mistake == "unknown" and isinstance(container, dict):
        container[draw(st.text(min_size=1, max_size=10))] = draw(scalars)
    elif mistake == "duplicate name":
        doc["models"].append(dict(doc["models"][0]))
    text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()))
    if mistake == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif mistake == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(
            [":", "\t", "[", "{", "*a", "&a ", "<<: ", "!!python/object:os.system ",
             "- ", "'", '"', "%YAML 1.2\n", "---\n", "\x00", "\ufeff", "? "])) + text[at:]
    elif mistake == "duplicate key":
        text += draw(st.sampled_from(["models: []\n", "watch: {}\n", "loader:\n  threads: 2\n"]))
    elif mistake == "indent":
        lines = text.splitlines(keepends=True)
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = draw(st.sampled_from([" ", "   ", "\t"])) + lines[i]
        text = "".join(lines)
    return text


# -- garbage ------------------------------------------------------------------------------

keys = st.sampled_from(
    ["models", "name", "base_path", "watch", "settle", "version_policy", "latest", "specific",
     "loader", "threads", "http", "listen", "hooks", "on_error", "tags", "labels", "marker",
     "load_timeout", "memory_limit", "service", "state_dir"]) | st.text(max_size=8)
garbage_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children,
                                                                      max_size=5),
    max_leaves=25,
)
garbage_texts = st.one_of(
    st.text(max_size=200),
    garbage_documents.map(yaml.safe_dump),
    garbage_documents.map(lambda doc: yaml.safe_dump({"models": [doc]})),
    st.lists(st.tuples(keys, garbage_documents), max_size=3).map(
        lambda items: yaml.safe_dump({"models": [{"name": "m", "base_path": "/m", k: d}
                                                 for k, d in items]})),
)

# every kind, as text
texts = st.one_of(valid_documents().map(yaml.safe_dump), near_valid_texts(), garbage_texts)
# as file contents (plus bytes that are not UTF-8 at all)
file_contents = st.one_of(texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
                          st.binary(max_size=200))


# -- the properties -----------------------------------------------------------------------

def _scary(config: Config) -> bool:
    specs = [*config.consumers, *(spec for field in ("on_loading", "on_available", "on_error",
                                                     "on_retired")
                                  for spec in getattr(config.hooks, field))]
    specs += [m.warmup for m in config.models if ":" in m.warmup]
    return any(spec.partition(":")[0].split(".")[0] in SCARY_MODULES for spec in specs)


def check_parse(text: str) -> str:
    """parse_config gives a Config or a ConfigError listing located one-line errors, sorted
    by line; "ok" or "error"."""
    try:
        config: Any = parse_config(text, source=SOURCE, base_dir=Path("/"))
    except ConfigError as err:
        assert err.file == SOURCE and str(err), err
        for one in err.errors:
            assert one.file == SOURCE and "\n" not in str(one), f"multi-line: {str(one)!r}"
        lines = [e.line or 0 for e in err.errors if e.line is not None]
        assert lines == sorted(lines), lines
        assert str(err) == "\n".join(str(e) for e in err.errors)
        return "error"
    assert isinstance(config, Config)
    return "ok"


def check_from_yaml(path: Path) -> str:
    """ModelSwap.from_yaml builds a (not started) ModelSwap or raises ConfigError."""
    saved = list(sys.path)
    try:
        try:
            from modelswap.config import load_config

            config = load_config(path)
        except ConfigError:
            return "error"
        if _scary(config):
            return "skipped"
        try:
            ModelSwap.from_yaml(path)
        except ConfigError as err:
            assert all("\n" not in str(e) for e in err.errors), f"multi-line: {str(err)!r}"
            return "error"
        return "ok"
    finally:
        sys.path[:] = saved


def _check_outcome(code: int, out: str, err: str) -> str:
    assert "Traceback" not in out + err, err
    if code == 0:
        assert out == "ok\n", (out, err)
        return "ok"
    assert code == 2, (code, out, err)
    lines = err.splitlines()
    assert lines and all(line.startswith("modelswap: config error: ") for line in lines), err
    return "error"


def check_command(path: Path) -> str:
    """`modelswap check --config path` in a new process."""
    done = subprocess.run([sys.executable, "-m", "modelswap", "check", "--config",
                           str(path)], capture_output=True, text=True, timeout=120,
                          check=False)
    return _check_outcome(done.returncode, done.stdout, done.stderr)


def check_command_in_process(path: Path) -> str:
    """The same code path as `modelswap check`, without starting a process per case."""
    out, err = io.StringIO(), io.StringIO()
    saved = list(sys.path)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(["check", "--config", str(path)])
    finally:
        sys.path[:] = saved
    return _check_outcome(code, out.getvalue(), err.getvalue())


def safe_to_import(content: bytes) -> bool:
    """False when a document names code that should not be imported by a test."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return not any(name in text for name in SCARY_MODULES)


Checker = Callable[[Path], str]
