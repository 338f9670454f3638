"""Bad configuration and flags through the real CLI: every one refused with one `error:` line and exit 2.

Then property-based: random `--set` overrides and random bench.toml contents (hypothesis) either load or
raise UserError with a one-line message; never any other exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.registry import resolve_config
from common.config import Config, load_config
from common.errors import UserError

# (file content, text the error line must hold)
BAD_TOML = [
    ("[train\nepochs = 3\n", "not valid TOML"),
    ("[train]\nepochs = 3\nepochs = 4\n", "not valid TOML"),
    ("[train]\nepochs = \n", "not valid TOML"),
    ("[train]\nepochs = 3 3\n", "not valid TOML"),
    ("[trian]\nepochs = 3\n", "did you mean 'train'"),
    ("[train]\nepoch = 3\n", "did you mean 'train.epochs'"),
    ("[benchmark]\nbatch_size = [1]\n", "did you mean 'benchmark.batch_sizes'"),
    ("[train]\nepochs = \"five\"\n", "train.epochs"),
    ("[train]\nepochs = 1.5\n", "expected an integer"),
    ("[train]\naugment = 1\n", "expected true/false"),
    ("[train]\nlr = \"fast\"\n", "expected a number"),
    ("[benchmark]\nbatch_sizes = 32\n", "expected a list"),
    ("[benchmark]\nbatch_sizes = []\n", "must not be empty"),
    ("[benchmark]\nbatch_sizes = [\"a\"]\n", "benchmark.batch_sizes[0]"),
    ("[benchmark]\nbatch_sizes = [0]\n", "between"),
    ("[train]\nepochs = 0\n", "must be between 1 and 1000"),
    ("[train]\nlr = -1.0\n", "train.lr"),
    ("[compress]\nsparsity = 0.99\n", "compress.sparsity"),
    ("[benchmark]\ncell_memory_mb = -1\n", "benchmark.cell_memory_mb"),
    ("[benchmark]\ncell_timeout_s = 0\n", "benchmark.cell_timeout_s"),
    ("[data]\nfolds = 5\nfold = 5\n", "data.fold = 5"),
    ("[data]\ndataset = \"fer2014\"\n", "did you mean 'fer2013'"),
    ("[data]\ndataset = \"fer2013\"\n", "data.path is empty"),
    ("[compress]\nmethods = [\"l2\"]\n", "compress.methods[0]"),
    ("[benchmark]\nvariants = [\"dense-fp16\"]\n", "not a variant"),
    ("train = 3\n", "train must be a table"),
    ("[backends]\nopenvino = 3\n", "table of tables"),
    ("[backends.openvino]\nprecison = \"f32\"\n", "precison"),
    ("[backends.nosuch]\nx = 1\n", "nosuch"),
    ("[model]\nin_channels = 2\n", "allowed values are 1, 3"),
    ("[train]\nepochs = 1e400\n", "train.epochs"),
    ("[train]\nlr = nan\n", "train.lr"),
]


@pytest.mark.parametrize(("text", "contains"), BAD_TOML, ids=[f"toml{i}" for i in range(len(BAD_TOML))])
def test_bad_config_file_is_refused(refuse, tmp_path: Path, text: str, contains: str) -> None:
    cfg = tmp_path / "bench.toml"
    cfg.write_text(text, encoding="utf-8")
    refuse(["data", "--config", str(cfg)], contains=contains)


def test_missing_config_file(refuse, tmp_path: Path) -> None:
    refuse(["data", "--config", str(tmp_path / "nope.toml")], contains="does not exist")


def test_empty_config_file(refuse, tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_bytes(b"")
    refuse(["train", "--config", str(tmp_path / "empty.toml")], contains="is empty")


def test_binary_config_file(refuse, tmp_path: Path) -> None:
    (tmp_path / "bin.toml").write_bytes(bytes(range(256)) * 4)
    refuse(["run", "--config", str(tmp_path / "bin.toml")], contains="not valid TOML")


def test_config_path_is_a_folder(refuse, tmp_path: Path) -> None:
    refuse(["compress", "--config", str(tmp_path)], contains="does not exist")


BAD_SETS = [
    ("epochs", "expected section.key=value"),
    ("=3", "expected section.key=value"),
    ("train.=3", "the key must be section.key"),
    (".epochs=3", "the key must be section.key"),
    ("train.epochs.x=3", "train.epochs"),
    ("train.epochs=-3", "train.epochs"),
    ("train.epochs=[1,2]", "expected an integer"),
    ("benchmark.threads=abc", "expected an integer"),
    ("nosuch.key=1", "unknown key"),
    ("store.url=3", "store.url"),
    ("benchmark.cell_memory_mb=1.5", "expected an integer"),
    ("data.contempt=sometimes", "allowed values"),
    ("compress.weight_bits=6", "allowed values are 7, 8"),
]


@pytest.mark.parametrize(("item", "contains"), BAD_SETS, ids=[f"set{i}" for i in range(len(BAD_SETS))])
def test_bad_set_override_is_refused(refuse, item: str, contains: str) -> None:
    refuse(["data", "--set", item], contains=contains)


BAD_FLAGS = [
    (["data", "--no-such-flag"], "unrecognized arguments"),
    (["nosuchcommand"], "invalid choice"),
    ([], "required"),
    (["run", "--backend", "tensorflow"], "tensorflow"),
    (["run", "--variant", "l1-int4"], "not a variant"),
    (["compress", "--methods", "magic"], "unknown method"),
    (["compress", "--methods", ","], "--methods"),
    (["data", "--dataset", "mnist"], "data.dataset"),
    (["data", "--dataset", "fer2013"], "data.path is empty"),
    (["train", "--json", "extra-positional"], "unrecognized arguments"),
    (["history", "--store", "not a url"], "not a database URL"),
    (["history", "--store", "nosuchdb://x/y"], "store.url"),
    (["report", "no-such-run", "--store", "sqlite:///h.sqlite"], "no-such-run"),
]


@pytest.mark.parametrize(("argv", "contains"), BAD_FLAGS, ids=[f"flags{i}" for i in range(len(BAD_FLAGS))])
def test_bad_flags_are_refused(refuse, argv: list[str], contains: str) -> None:
    refuse(argv, contains=contains)


# ---- property-based: no input makes config loading raise anything but a one-line UserError -----------------
KEYS = {f"{section}.{name}" for section, fields in Config().to_dict().items() if isinstance(fields, dict)
        for name in fields}
KEYS |= {"backends.openvino.precision", "backends.onnxruntime.threads", "backends.torch-eager.device"}
toml_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).replace("inf", "inf").lower()),
    st.booleans().map(lambda b: str(b).lower()),
    st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.text(max_size=12),  # bare words and junk
)
toml_values = st.one_of(toml_scalars, st.lists(toml_scalars, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"))
override = st.tuples(st.one_of(st.sampled_from(sorted(KEYS)), st.text(max_size=20)), toml_values).map(
    lambda kv: f"{kv[0]}={kv[1]}")


def _load_or_user_error(path: Path | None, overrides: list[str]) -> None:
    try:
        resolve_config(load_config(path, overrides))
    except UserError as e:
        msg = str(e)
        assert msg and "\n" not in msg and "\r" not in msg, repr(msg)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(override, max_size=4))
def test_random_set_overrides_never_crash(overrides: list[str]) -> None:
    _load_or_user_error(None, overrides)


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(sorted(KEYS)))
        section, _, name = key.rpartition(".")
        lines += [f"[{section}]", f"{name} = {draw(toml_values)}"]
    return "\n".join(lines) + "\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(toml_documents(), st.text(max_size=200), st.binary(max_size=64).map(
    lambda b: b.decode("latin-1"))))
def test_random_config_files_never_crash(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "bench.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _load_or_user_error(path, [])
