"""Tests of modelswap.config: schema, defaults, durations, paths and located errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import config_cases
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings

from modelswap.config import (
    Config,
    VersionPolicy,
    load_config,
    parse_config,
    parse_duration,
)
from modelswap.errors import ConfigError

MINIMAL = """\
models:
  - name: m
    base_path: /srv/m
"""

FULL = """\
models:
  - name: half_plus_two
    base_path: /srv/models/half_plus_two
    tags: [serve, gpu, serve]
    version_policy: {latest: 2}
    labels: {stable: 3, canary: 4}
    signatures: [serving_default]
    marker: _SUCCESS
    trust: false
    load_options:
      allow_partial_checkpoint: true
      experimental_io_device: /job:localhost
      experimental_variable_policy: save_variable_devices
  - name: other.v2-x
    base_path: rel/other
    version_policy: all
  - name: pinned
    base_path: /srv/pinned
    version_policy: {specific: [5, 3, 5]}
watch:
  mode: poll
  poll_interval: 500ms
  rescan_interval: 1m
  settle: 0.25
loader:
  threads: 4
  max_retries: 0
  retry_interval: 1.5s
  load_timeout: 0
  swap_policy: resource
service:
  require: all
  start_timeout: 2m
  stop_timeout: 1h
  state_dir: state
logging:
  level: debug
  format: json
http:
  listen: 127.0.0.1:8501
hooks:
  on_loading: [pkg.mod:on_loading]
  on_available: ["pkg:Cls.method"]
  on_error: []
  on_retired: [a.b.c:d]
consumers: [my.consumer:run]
python_path: [lib, /opt/lib]
"""


def write(tmp_path: Path, text: str, name: str = "modelswap.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(tmp_path: Path, text: str) -> tuple[ConfigError, Path]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value, path


def test_full_example(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    cfg = load_config(path)
    assert cfg.source == str(path)
    first, second, third = cfg.models
    assert first.name == "half_plus_two"
    assert first.base_path == Path("/srv/models/half_plus_two")
    assert first.tags == ("gpu", "serve")
    assert first.tag_set == frozenset({"serve", "gpu"})
    assert first.version_policy == VersionPolicy(kind="latest", latest=2)
    assert first.labels == {"stable": 3, "canary": 4}
    assert first.signatures == ("serving_default",)
    assert first.marker == "_SUCCESS"
    assert first.trust is None
    assert first.load_options.allow_partial_checkpoint
    assert first.load_options.experimental_io_device == "/job:localhost"
    assert first.load_options.experimental_variable_policy == "save_variable_devices"
    assert not first.load_options.is_default and second.load_options.is_default
    assert second.name == "other.v2-x"
    assert second.base_path == tmp_path / "rel" / "other"
    assert second.version_policy.kind == "all"
    assert third.version_policy == VersionPolicy(kind="specific", specific=(3, 5))
    assert (cfg.watch.mode, cfg.watch.poll_interval, cfg.watch.rescan_interval) == ("poll", 0.5, 60)
    assert cfg.watch.settle == 0.25
    assert cfg.loader.threads == 4 and cfg.loader.max_retries == 0
    assert cfg.loader.retry_interval == 1.5 and cfg.loader.load_timeout == 0
    assert cfg.loader.swap_policy == "resource"
    assert cfg.service.require == "all" and cfg.service.stop_timeout == 3600
    assert cfg.service.start_timeout == 120
    assert cfg.service.state_dir == tmp_path / "state"
    assert (cfg.logging.level, cfg.logging.format) == ("debug", "json")
    assert cfg.http.listen == "127.0.0.1:8501"
    assert cfg.http.address == ("127.0.0.1", 8501)
    assert cfg.hooks.on_loading == ("pkg.mod:on_loading",)
    assert cfg.hooks.on_available == ("pkg:Cls.method",)
    assert cfg.hooks.on_retired == ("a.b.c:d",)
    assert cfg.consumers == ("my.consumer:run",)
    assert cfg.python_path == (tmp_path / "lib", Path("/opt/lib"))
    # round trip through the Python form
    again = Config.model_validate(cfg.model_dump())
    assert again.model_dump() == cfg.model_dump()
    assert again.models == cfg.models


def test_defaults() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.source == "<string>"
    (model,) = cfg.models
    assert model.tags == ("serve",) and model.tag_set == frozenset({"serve"})
    assert model.version_policy == VersionPolicy(kind="latest", latest=1)
    assert model.labels == {} and model.signatures == () and model.marker is None
    assert model.trust is not None and not model.trust.owners
    assert not model.trust.group_writable_by and model.load_options.is_default
    assert cfg.watch.mode == "auto"
    assert (cfg.watch.poll_interval, cfg.watch.rescan_interval, cfg.watch.settle) == (1, 30, 0.2)
    assert (cfg.loader.threads, cfg.loader.max_retries) == (2, 5)
    assert (cfg.loader.retry_interval, cfg.loader.load_timeout) == (2, 600)
    assert cfg.loader.swap_policy == "availability"
    assert (cfg.service.require, cfg.service.start_timeout) == ("any", 600)
    assert cfg.service.stop_timeout == 30
    assert cfg.service.state_dir is None
    assert (cfg.logging.level, cfg.logging.format) == ("info", "auto")
    assert cfg.http.listen is None and cfg.http.address is None
    assert cfg.hooks.on_loading == cfg.hooks.on_error == ()
    assert cfg.consumers == () and cfg.python_path == ()


def test_models_are_frozen() -> None:
    cfg = parse_config(MINIMAL)
    with pytest.raises(Exception, match="frozen"):
        cfg.models[0].name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0), (3, 3.0), (1.5, 1.5), ("200ms", 0.2), ("2s", 2.0), ("1.5s", 1.5),
        ("5m", 300.0), ("1h", 3600.0), ("250 ms", 0.25), (" 7 ", 7.0), (".5s", 0.5),
        ("0", 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)
    cfg = parse_config(MINIMAL + f"watch:\n  settle: {yaml.safe_dump(value).splitlines()[0]}\n")
    assert cfg.watch.settle == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", [-1, -0.5, "-2s", True, None, "soon", "2 days", "1e3", "", "s", float("nan"),
              float("inf"), 10**400, [1], "1.2.3s"],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_relative_paths_resolve_against_config_dir(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    path = write(sub, MINIMAL.replace("/srv/m", "models/m") + "python_path: [../lib]\n")
    cfg = load_config(path)
    assert cfg.models[0].base_path == sub / "models" / "m"
    assert cfg.python_path == (tmp_path / "lib",)


def test_parse_config_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = MINIMAL.replace("/srv/m", "m")
    assert parse_config(text, base_dir=tmp_path).models[0].base_path == tmp_path / "m"
    monkeypatch.chdir(tmp_path)
    assert parse_config(text).models[0].base_path == tmp_path / "m"


BASE = MINIMAL  # lines 1-3; errors below start at line 4

ERROR_CASES: list[tuple[str, str, int | None, str | None, str]] = [
    ("unknown_top", BASE + "watchh: {}\n", 4, "watchh", "unknown key 'watchh'"),
    ("unknown_nested", BASE + "watch:\n  mode: poll\n  setle: 1s\n", 6, "watch.setle",
     "did you mean 'settle'"),
    ("unknown_model_key", BASE + "    tag: [serve]\n", 4, "models[0].tag", "unknown key 'tag'"),
    ("source_not_settable", BASE + "source: x.yaml\n", 4, "source", "unknown key 'source'"),
    ("wrong_type", BASE + "loader:\n  threads: two\n", 5, "loader.threads", "valid integer"),
    ("bool_not_int", BASE + "loader:\n  threads: true\n", 5, "loader.threads", "valid integer"),
    ("threads_zero", BASE + "loader:\n  threads: 0\n", 5, "loader.threads", "greater than"),
    ("section_not_mapping", BASE + "watch: 3\n", 4, "watch", "expected a mapping"),
    ("section_null", BASE + "watch:\n", 4, "watch", "expected a mapping"),
    ("bad_enum", BASE + "watch: {mode: fast}\n", 4, "watch.mode", "'auto', 'inotify' or 'poll'"),
    ("bad_duration", BASE + "watch:\n  settle: soon\n", 5, "watch.settle", "invalid duration"),
    ("negative_duration", BASE + "watch:\n  settle: -1\n", 5, "watch.settle", ">= 0"),
    ("negative_duration_str", BASE + "loader:\n  retry_interval: -2s\n", 5,
     "loader.retry_interval", ">= 0"),
    ("zero_poll", BASE + "watch:\n  poll_interval: 0\n", 5, "watch.poll_interval",
     "greater than 0"),
    ("latest_zero", BASE + "    version_policy: {latest: 0}\n", 4,
     "models[0].version_policy.latest", "greater than or equal to 1"),
    ("latest_and_specific", BASE + "    version_policy: {latest: 1, specific: [1]}\n", 4,
     "models[0].version_policy", "expected {latest: N}, 'all' or {specific: [versions]}"),
    ("newest", BASE + "    version_policy: newest\n", 4, "models[0].version_policy",
     "expected {latest: N}"),
    ("specific_empty", BASE + "    version_policy: {specific: []}\n", 4,
     "models[0].version_policy", "at least one version"),
    ("specific_negative",
     BASE + "    version_policy:\n      specific:\n        - 3\n        - -1\n", 7,
     "models[0].version_policy.specific[1]", "greater than or equal to 1"),
    ("bad_name", "models:\n  - base_path: /x\n    name: 'a b'\n", 3, "models[0].name",
     "invalid name 'a b'"),
    ("name_not_str", "models:\n  - name: 12\n    base_path: /x\n", 2, "models[0].name",
     "valid string"),
    ("missing_name", "models:\n  - base_path: /x\n", 2, "models[0].name", "required key"),
    ("bad_label", BASE + "    labels: {stable: 0}\n", 4, "models[0].labels.stable",
     "greater than or equal to 1"),
    ("bad_label_name", BASE + "    labels:\n      'x y': 1\n", 5, "models[0].labels.x y",
     "invalid name"),
    ("empty_tags", BASE + "    tags: []\n", 4, "models[0].tags", "at least one tag"),
    ("empty_tag", BASE + "    tags: ['']\n", 4, "models[0].tags[0]", "at least 1 character"),
    ("tags_str", BASE + "    tags: serve\n", 4, "models[0].tags", "should be a list"),
    ("duplicate_names", BASE + "  - name: n\n    base_path: /n\n  - base_path: /o\n    name: m\n",
     7, "models[2].name", "duplicate model name 'm'"),
    ("duplicate_keys", BASE + "watch:\n  settle: 1s\n  mode: poll\n  settle: 2s\n", 7,
     "watch.settle", "duplicate key 'settle'"),
    ("duplicate_top_keys", BASE + "models: []\n", 4, "models", "duplicate key 'models'"),
    ("empty_models", "models: []\n", 1, "models", "at least one model"),
    ("models_null", "models:\n", 1, "models", "should be a list"),
    ("missing_models", "watch: {mode: poll}\n", 1, "models", "required key is missing"),
    ("non_mapping", "- a\n- b\n", 1, None, "expected a mapping at the top level, got list"),
    ("scalar_top", "hello\n", 1, None, "expected a mapping at the top level, got str"),
    ("syntax_error", BASE + "watch: {mode: poll\n", 5, None, "invalid YAML"),
    ("tab_error", "models:\n\t- name: m\n", 2, None, "invalid YAML"),
    ("two_documents", BASE + "---\nmodels: []\n", 4, None, "single document"),
    ("control_char", BASE + "watch: {mode: \x07}\n", 4, None, "invalid YAML: character #x0007"),
    ("too_deep", "models: " + "[" * 5000 + "]" * 5000 + "\n", None, None, "nested too deeply"),
    ("alias", "models:\n  - &m {name: a, base_path: /a}\n  - *m\n", 3, None, "aliases"),
    ("merge_key", BASE + "watch:\n  <<: {mode: poll}\n", 5, "watch", "merge keys"),
    ("python_tag", BASE + "watch: !!python/object/apply:os.system [echo]\n", 4, None,
     "could not determine a constructor"),
    ("huge_int", BASE + "loader:\n  threads: 1" + "0" * 5000 + "\n", 5, "loader.threads",
     "too large"),
    ("non_str_key", BASE + "1: 2\n", 4, "1", "Keys should be strings"),
    ("non_str_label", BASE + "    labels:\n      3: 1\n", 5, "models[0].labels.3",
     "valid string"),
    ("unhashable_key", BASE + "? [a, b]\n: 1\n", 4, None, "unhashable key"),
    ("bad_listen", BASE + "http:\n  listen: localhost\n", 5, "http.listen", "host:port"),
    ("bad_port", BASE + "http:\n  listen: 'h:70000'\n", 5, "http.listen", "0-65535"),
    ("listen_int", BASE + "http:\n  listen: 8501\n", 5, "http.listen", "valid string"),
    ("bad_hook", BASE + "hooks:\n  on_error:\n    - foo.bar\n", 6, "hooks.on_error[0]",
     "'pkg.module:callable'"),
    ("bad_hook_ident", BASE + "hooks:\n  on_loading: ['foo-bar:baz']\n", 5,
     "hooks.on_loading[0]", "'pkg.module:callable'"),
    ("bad_consumer", BASE + "consumers: [':x']\n", 4, "consumers[0]", "'pkg.module:callable'"),
    ("marker_slash", BASE + "    marker: done/_SUCCESS\n", 4, "models[0].marker",
     "plain file name"),
    ("trust_str", BASE + "    trust: 'yes'\n", 4, "models[0].trust",
     "expected true, false or a mapping"),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_errors_are_located(
    tmp_path: Path, text: str, line: int | None, key: str | None, fragment: str
) -> None:
    err, path = config_error(tmp_path, text)
    assert (err.file, err.line, err.key) == (str(path), line, key)
    assert fragment in err.message
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(err).startswith(prefix + (f"{key}: " if key else ""))
    assert "\n" not in str(err)


def test_every_error_reported_sorted_by_line() -> None:
    text = BASE + "watch:\n  settle: x\n  mode: y\n  poll_interval: z\n" + \
        "loader: {threads: 0}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="c.yaml")
    err = info.value
    assert [(e.line, e.key) for e in err.errors] == [
        (5, "watch.settle"), (6, "watch.mode"), (7, "watch.poll_interval"),
        (8, "loader.threads")]
    assert (err.key, err.line) == ("watch.settle", 5)
    lines = str(err).splitlines()
    assert len(lines) == 4 and all(line.startswith("c.yaml:") for line in lines)
    assert lines[1].startswith("c.yaml:6: watch.mode: ")


def test_duplicate_name_listed_with_other_errors() -> None:
    text = BASE + "  - name: m\n    base_path: /n\n    tags: []\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="c.yaml")
    assert [(e.line, e.key) for e in info.value.errors] == [
        (4, "models[1].name"), (6, "models[1].tags")]


@pytest.mark.parametrize(("old", "new"), [("all", "all"), ("any", "any"),
                                          ("immediately", "none")])
def test_ready_when_is_a_deprecated_alias(old: str, new: str) -> None:
    cfg = parse_config(MINIMAL + f"service: {{ready_when: {old}}}\n")
    assert cfg.service.require == new and cfg.service.ready_when == old


def test_ready_when_and_require_conflict() -> None:
    with pytest.raises(ConfigError, match="give only require"):
        parse_config(MINIMAL + "service: {ready_when: all, require: any}\n")


LOAD_OPTION_ERRORS = [
    ("{allow_partial: true}", "models[0].load_options.allow_partial",
     "did you mean 'allow_partial_checkpoint'"),
    ("{allow_partial_checkpoint: 'yes'}", "models[0].load_options.allow_partial_checkpoint",
     "valid boolean"),
    ("{experimental_io_device: cpu}", "models[0].load_options.experimental_io_device",
     "device name like '/job:localhost'"),
    ("{experimental_variable_policy: all}",
     "models[0].load_options.experimental_variable_policy", "save_variable_devices"),
    ("[allow_partial_checkpoint]", "models[0].load_options", "expected a mapping"),
]


@pytest.mark.parametrize(("value", "key", "fragment"), LOAD_OPTION_ERRORS)
def test_load_options_errors(value: str, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + f"    load_options: {value}\n", source="c.yaml")
    assert (info.value.line, info.value.key) == (4, key)
    assert fragment in info.value.message


def test_paths_expand_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = parse_config("models:\n  - name: m\n    base_path: ~/models/m\n"
                       "python_path: [~/lib]\n")
    assert cfg.models[0].base_path == tmp_path / "models" / "m"
    assert cfg.python_path == (tmp_path / "lib",)


def test_empty_file(tmp_path: Path) -> None:
    for text in ("", "# only a comment\n", "---\n"):
        err, path = config_error(tmp_path, text)
        assert err.file == str(path)
        assert "empty" in err.message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path) and info.value.line is None
    assert "cannot read config" in str(info.value)
    assert str(info.value).startswith(str(path))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path)  # a directory
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"models: \xff\xfe\n")
    with pytest.raises(ConfigError, match="UTF-8") as info:
        load_config(bad)
    assert info.value.file == str(bad)


def test_duplicate_names_via_python_api() -> None:
    model = {"name": "a", "base_path": "/a"}
    with pytest.raises(ValueError, match="duplicate model name"):
        Config.model_validate({"models": [model, model]})


def test_version_policy_forms() -> None:
    def policy(text: str) -> VersionPolicy:
        return parse_config(BASE + f"    version_policy: {text}\n").models[0].version_policy

    assert policy("{latest: 3}") == VersionPolicy(kind="latest", latest=3)
    assert policy("all").kind == "all"
    assert policy("{specific: [7]}").specific == (7,)
    with pytest.raises(ConfigError, match=r"latest"):
        policy("{latest: true}")
    with pytest.raises(ConfigError, match=r"expected \{latest: N\}"):
        policy("{}")


def test_ipv6_listen() -> None:
    cfg = parse_config(BASE + "http:\n  listen: '[::1]:0'\n")
    assert cfg.http.address == ("::1", 0)


# -- generated documents (tests/config_cases.py): valid, near-valid and garbage -----------
# more cases: bench/soak.py --config-cases 1000

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_cases.texts)
def test_fuzz_only_config_errors(text: str) -> None:
    config_cases.check_parse(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_cases.file_contents)
def test_fuzz_from_yaml_and_check_in_process(tmp_path_factory: pytest.TempPathFactory,
                                            content: bytes) -> None:
    """ModelSwap.from_yaml: a ModelSwap or a ConfigError; the `check` command's code path:
    exit 0 and `ok`, or exit 2 and one line, never a traceback."""
    assume(config_cases.safe_to_import(content))
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_bytes(content)
    verdict = config_cases.check_from_yaml(path)
    if verdict != "skipped":
        assert config_cases.check_command_in_process(path) == verdict


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(config_cases.file_contents)
def test_fuzz_check_command(tmp_path: Path, content: bytes) -> None:
    """`modelswap check` as a process: exit 0 or 2 with one line, never a traceback."""
    assume(config_cases.safe_to_import(content))
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    config_cases.check_command(path)


TRUST_CASES: list[tuple[str, str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = [
    # (trust section, expected uids, gids, group_writable_by)
    ("{}", (), (), ()),
    ("{owners: [root, 1001, 'user:7', 'group:root', 'group:1500']}", (0, 7, 1001), (0, 1500),
     ()),
    ("{group_writable_by: [root, 1500, 'group:1600']}", (), (), (0, 1500, 1600)),
]


@pytest.mark.parametrize(("section", "uids", "gids", "writable"), TRUST_CASES)
def test_trust_owners_resolve(section: str, uids: tuple[int, ...], gids: tuple[int, ...],
                              writable: tuple[int, ...]) -> None:
    cfg = parse_config(MINIMAL + f"trust: {section}\n")
    trust = cfg.models[0].trust
    assert trust is not None
    assert (sorted(trust.uids), sorted(trust.gids), trust.group_writable_by) == (
        list(uids), list(gids), writable)


@pytest.mark.parametrize(("text", "line", "key", "fragment"), [
    (MINIMAL + "trust:\n  owners:\n    - no-such-user-xyz\n", 6, "trust.owners[0]",
     "unknown user 'no-such-user-xyz'"),
    (MINIMAL + "trust:\n  group_writable_by: [nogroup-xyz]\n", 5, "trust.group_writable_by[0]",
     "unknown group 'nogroup-xyz'"),
    (MINIMAL + "    trust:\n      owners: ['group:nogroup-xyz']\n", 5,
     "models[0].trust.owners[0]", "unknown group"),
    (MINIMAL + "trust: {owners: [-3]}\n", 4, "trust.owners[0]", "out of range"),
    (MINIMAL + "trust: {owner: [root]}\n", 4, "trust.owner", "did you mean 'owners'"),
])
def test_trust_errors(text: str, line: int, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="c.yaml")
    assert (info.value.line, info.value.key) == (line, key)
    assert fragment in info.value.message
    assert len(info.value.errors) == 1  # a bad top-level section is reported once


def test_trust_off_and_default() -> None:
    assert parse_config(MINIMAL + "    trust: false\n").models[0].trust is None
    assert parse_config(MINIMAL).models[0].trust == parse_config(
        MINIMAL + "    trust: true\n").models[0].trust
