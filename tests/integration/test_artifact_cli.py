"""`bench import` and `bench run --artifact` from the command line, on tampered artifacts: the labels a run
prints must come from what ran, not from what a manifest claims."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import harness.cli.entry as cli
from backends.artifact import MANIFEST, ONNX_FILE, sha256_file

SMALL = ["data.synthfer_train=70", "data.synthfer_val=70", "data.synthfer_test=70", "benchmark.threads=1",
         "benchmark.min_duration_s=0.05", "benchmark.min_iterations=20", "benchmark.warmup_s=0.02",
         "benchmark.batch_sizes=[1]", "benchmark.cell_timeout_s=180"]


def _rehash(art: Path) -> None:
    """Rewrite the manifest's size and sha256 of model.onnx: the tampering passes the hash check."""
    m = json.loads((art / MANIFEST).read_text())
    f = art / ONNX_FILE
    m["files"][ONNX_FILE] = {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
    (art / MANIFEST).write_text(json.dumps(m))


def _permute_classes(path: Path) -> None:
    """Roll the rows of the last Gemm's weight and bias: the model's class order no longer matches model.pt."""
    model = onnx.load(str(path))
    gemm = [n for n in model.graph.node if n.op_type == "Gemm"][-1]
    inits = {i.name: i for i in model.graph.initializer}
    for name in gemm.input[1:3]:
        arr = numpy_helper.to_array(inits[name])
        inits[name].CopyFrom(numpy_helper.from_array(np.roll(arr, 1, axis=0).copy(), name))
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def tampered_run(artifacts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tampered")
    fake_int8 = root / "fake-int8"  # an int8 artifact whose model.onnx is the fp32 graph, manifest rehashed
    shutil.copytree(artifacts["dense-int8"], fake_int8, ignore=shutil.ignore_patterns("cache"))
    shutil.copyfile(artifacts["dense-fp32"] / ONNX_FILE, fake_int8 / ONNX_FILE)
    _rehash(fake_int8)
    permuted = root / "permuted"  # ONNX weights permuted, model.pt intact, manifest rehashed
    shutil.copytree(artifacts["dense-fp32"], permuted, ignore=shutil.ignore_patterns("cache"))
    _permute_classes(permuted / ONNX_FILE)
    _rehash(permuted)
    imported = root / "imported"
    assert cli.main(["import", str(artifacts["l1-int8"] / ONNX_FILE), "--out", str(imported),
                     "--name", "foreign-int8"]) == 0
    imported_fp32 = root / "imported-fp32"
    assert cli.main(["import", str(artifacts["dense-fp32"] / ONNX_FILE), "--out", str(imported_fp32),
                     "--name", "foreign-fp32"]) == 0
    store = f"sqlite:///{root / 'h.sqlite'}"
    out = root / "results.json"
    sets = [*SMALL, f"store.cache_dir={root / 'cache'}", f"store.runs_dir={root / 'runs'}", f"store.url={store}"]
    argv = ["run", "--artifact", str(fake_int8), "--artifact", str(permuted), "--artifact", str(imported),
            "--artifact", str(imported_fp32),
            "--backend", "torch-eager", "--backend", "onnxruntime", "--backend", "openvino", "--json", str(out),
            "--no-report", *[x for s in sets for x in ("--set", s)]]
    assert cli.main(argv) == 0
    results = json.loads(out.read_text())
    rows = {(r["backend"], r["variant"]): r for r in results["results"]}
    return {"rows": rows, "store": store, "results": results,
            "dirs": {"fake": fake_int8, "permuted": permuted, "imported": imported, "imported-fp32": imported_fp32}}


def test_what_bench_run_writes_validates_against_the_published_schema(tampered_run: dict[str, Any]) -> None:
    """results.json of a real `bench run` conforms to results.schema.json (checked with jsonschema, not with the
    types it was generated from) and is the current version."""
    import jsonschema

    from common.records import SCHEMA_FILE, SCHEMA_VERSION

    schema = json.loads((Path(__file__).resolve().parents[2] / SCHEMA_FILE).read_text(encoding="utf-8"))
    results = tampered_run["results"]
    jsonschema.validate(results, schema)
    assert results["schema_version"] == SCHEMA_VERSION == 2
    bad = {**results, "results": [{**results["results"][0], "batch_size": "1"}, *results["results"][1:]]}
    with pytest.raises(jsonschema.ValidationError):  # the check can fail
        jsonschema.validate(bad, schema)


def test_fp32_graph_under_an_int8_manifest_is_not_labelled_int8(tampered_run: dict[str, Any]) -> None:
    rows = tampered_run["rows"]
    for backend in ("onnxruntime", "openvino"):
        r = rows[(backend, "dense-int8")]
        assert r["status"] == "ok", r["reason"]
        assert r["precision"] == "fp32" and r["int8_layers"] == 0
        assert "declared int8" in r["precision_flag"]


def test_permuted_onnx_weights_disagree_and_select_rejects_them(tampered_run: dict[str, Any], capsys: Any) -> None:
    rows = tampered_run["rows"]
    assert rows[("onnxruntime", "dense-fp32")]["reference"].startswith("pytorch-reference")  # model.pt is there
    for backend in ("onnxruntime", "openvino"):
        r = rows[(backend, "dense-fp32")]
        assert r["status"] == "ok" and r["agrees"] is False and r["agreement"] < 0.5
        assert "below 0.999 (benchmark.min_agreement_fp32)" in r["agreement_reason"]
    assert rows[("torch-eager", "dense-fp32")]["agrees"] is True  # model.pt is the reference
    capsys.readouterr()
    cli.main(["select", "--store", tampered_run["store"], "--json"])
    sel = json.loads(capsys.readouterr().out)
    rejected = {(r["backend"], r["variant"]): r["why"] for r in sel["rejected"]}
    for backend in ("onnxruntime", "openvino"):
        assert rejected[(backend, "dense-fp32")].startswith("disagrees with the PyTorch reference")
    assert all((r["backend"], r["variant"]) != ("onnxruntime", "dense-fp32") for r in sel["ranked"])
    # the imported models were checked (against ONNX Runtime fp32): nothing is refused as unverified
    assert not [r for r in sel["rejected"] if r["why"].startswith("unverified")]
    choices = {(r["backend"], r["variant"]): r for r in [*sel["ranked"], *sel["rejected"]]}
    assert choices[("openvino", "foreign-fp32")]["agrees"] is True
    assert choices[("openvino", "foreign-fp32")]["reference"] == ORT_REF


def test_file_bytes_is_the_size_on_disk(tampered_run: dict[str, Any]) -> None:
    dirs = {"dense-int8": tampered_run["dirs"]["fake"], "dense-fp32": tampered_run["dirs"]["permuted"],
            "foreign-int8": tampered_run["dirs"]["imported"], "foreign-fp32": tampered_run["dirs"]["imported-fp32"]}
    checked = 0
    for (backend, variant), r in tampered_run["rows"].items():
        if r["status"] != "ok":
            continue
        f = dirs[variant] / ("model.pt" if backend == "torch-eager" else ONNX_FILE)
        assert r["file_bytes"] == f.stat().st_size
        checked += 1
    assert checked >= 7


def test_imported_onnx_manifest_is_derived_from_the_file(tampered_run: dict[str, Any],
                                                         artifacts: dict[str, Path]) -> None:
    m = json.loads((tampered_run["dirs"]["imported"] / MANIFEST).read_text())
    ours = json.loads((artifacts["l1-int8"] / MANIFEST).read_text())
    assert m["precision"] == "int8" and m["method"] == "imported"
    assert m["params"] == ours["params"]
    assert m["gmac"] == pytest.approx(ours["gmac"], rel=0.02)
    assert m["files"][ONNX_FILE]["bytes"] == (artifacts["l1-int8"] / ONNX_FILE).stat().st_size
    r = tampered_run["rows"][("onnxruntime", "foreign-int8")]
    assert r["status"] == "ok" and r["precision"] == "int8" and r["int8_layers"] > 0
    te = tampered_run["rows"][("torch-eager", "foreign-int8")]
    assert te["status"] == "error" and "model.pt" in te["reason"]  # no PyTorch model: torch-eager cannot run it


ORT_REF = "onnxruntime-reference (fp32 graph on the CPU provider, graph optimizations off)"
ORT_REF_QDQ = "onnxruntime-reference (Q/DQ graph in float on the CPU provider, graph optimizations off)"


def test_an_imported_onnx_model_is_checked_against_its_own_graph_on_onnx_runtime(tampered_run: dict[str, Any]
                                                                                 ) -> None:
    rows = tampered_run["rows"]
    for backend in ("onnxruntime", "openvino"):
        fp32 = rows[(backend, "foreign-fp32")]
        assert fp32["status"] == "ok" and fp32["reference"] == ORT_REF
        assert fp32["agrees"] is True and fp32["agreement"] >= 0.999
        int8 = rows[(backend, "foreign-int8")]  # int8 kernels against the Q/DQ graph computed in fp32
        assert int8["status"] == "ok" and int8["precision"] == "int8" and int8["reference"] == ORT_REF_QDQ
        assert int8["agrees"] is not None and int8["agreement"] is not None
    entries = {(a["backend"], a["variant"]): a for a in tampered_run["results"]["agreement"]}
    assert entries[("openvino", "foreign-fp32")]["reference"] == ORT_REF
    assert entries[("onnxruntime", "foreign-fp32")]["max_abs_logit_diff"] < 1e-3  # the same graph, optimized


def test_the_onnx_runtime_reference_really_is_the_graph_as_written(tampered_run: dict[str, Any]) -> None:
    """Its logits match a plain ONNX Runtime session with every optimization off, and differ from PyTorch's
    for the permuted copy (where the ONNX graph is not model.pt)."""
    import onnxruntime as ort

    from harness.measure.agreement import ORT_REFERENCE_OPTIONS

    assert ORT_REFERENCE_OPTIONS == {"provider": "cpu", "optimization": "disable"}
    imported = tampered_run["dirs"]["imported"] / ONNX_FILE
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.optimized_model_filepath = str(tampered_run["dirs"]["imported"].parent / "as-run.onnx")
    ort.InferenceSession(str(imported), so, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops and not ops & {"QLinearConv", "ConvInteger"}


def test_import_refuses_what_is_not_an_onnx_model(tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a model")
    assert cli.main(["import", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not a valid ONNX model" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
