"""Export conformance: one template, subclassed per target; every case converts a real model with the real
converter and runs the artifact in the real runtime (parity is checked inside export and asserted again here).

Loading does not depend on the target, so each loader case is exported once (to ONNX, the quickest converter),
and each target is checked once on the case that exercises the most (timm names, a resampled input size).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from tests.helpers import small_vit
from vit_edge.api import Artifact, export, parity_inputs
from vit_edge.core.manifest import read_manifest
from vit_edge.core.targets import TARGETS
from vit_edge.core.types import Layout, Precision
from vit_edge.reading.loaders import load_model


def _hf_dir(kind: str, root: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=3, intermediate_size=192, image_size=64,
               patch_size=16, num_labels=7)
    if kind == "vit":
        model = transformers.ViTForImageClassification(transformers.ViTConfig(**cfg))
    else:
        model = transformers.DeiTForImageClassificationWithTeacher(transformers.DeiTConfig(**cfg))
    model.eval().save_pretrained(root / kind)
    return root / kind


# name → (how to get the MODEL argument, export kwargs). Random weights are fine: parity compares computations.
MODEL_CASES: dict[str, tuple[Callable[[Path], Any], dict[str, Any]]] = {
    "ref-vit-tiny-224": (lambda _: "vit_tiny_patch16", {"random_init": True}),
    "ref-vit-small-p32-img128": (lambda _: "vit_small_patch32", {"random_init": True, "img_size": 128}),
    "timm-vit-tiny-img160": (lambda _: "timm:vit_tiny_patch16_224", {"random_init": True, "img_size": 160}),
    "timm-deit-small-img96": (lambda _: "timm:deit_small_patch16_224", {"random_init": True, "img_size": 96}),
    "timm-deit-tiny-distilled": (lambda _: "timm:deit_tiny_distilled_patch16_224", {"random_init": True}),
    "hf-vit": (lambda root: _hf_dir("vit", root), {}),
    "hf-deit-with-teacher": (lambda root: _hf_dir("deit", root), {}),
}


DISTILLED_CASES = ("timm-deit-tiny-distilled", "hf-deit-with-teacher")


def _reference_logits(model_arg: Any, kwargs: dict[str, Any], inputs: np.ndarray, layout: Layout) -> np.ndarray:
    torch.manual_seed(0)
    loaded = load_model(model_arg, random_init=kwargs.get("random_init", False), img_size=kwargs.get("img_size"))
    batch = torch.from_numpy(inputs)
    if layout is Layout.NHWC:
        batch = batch.permute(0, 3, 1, 2)
    with torch.no_grad():
        return loaded.model(batch).numpy()


def _export_to(target: str, model: Any, out: Path, **kwargs: Any) -> Artifact:
    from vit_edge.exporters.registry import get_exporter

    get_exporter(target).check_available()  # importing a converter may draw from torch's RNG (litert)
    torch.manual_seed(0)  # random-init models must equal the reference rebuilt with the same seed
    return export(model, target, out, **kwargs)


def _check_fp32_parity(target: str, case: str, tmp_path: Path) -> Artifact:
    make, kwargs = MODEL_CASES[case]
    model_arg = make(tmp_path)
    artifact = _export_to(target, model_arg, tmp_path / "art", **kwargs)
    parity = artifact.manifest.parity
    assert parity is not None and parity.passed and parity.min_cosine >= 0.99999 and parity.top1_agreement == 1.0
    # independent re-check outside export(): fresh session, fresh inputs, reference rebuilt from scratch
    spec = artifact.manifest.input_spec
    inputs = parity_inputs(spec, 4)[::-1].copy()
    ours = Artifact.open(artifact.path).run(inputs)
    reference = _reference_logits(model_arg, kwargs, inputs, spec.layout)
    cos = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cos.min() >= 0.99999 and (ours.argmax(1) == reference.argmax(1)).all()
    return artifact


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in MODEL_CASES if c != "timm-vit-tiny-img160"])
def test_loader_case_exports_with_parity(case: str, tmp_path: Path) -> None:
    """Each way of naming a model, exported once (ONNX) and checked against a reference rebuilt from scratch; the
    manifest records whether it has a distillation token (written before any target's converter runs)."""
    artifact = _check_fp32_parity("onnx", case, tmp_path)
    assert artifact.manifest.source.architecture["distilled"] is (case in DISTILLED_CASES)


class ExportConformance:
    """What every target must do. Subclasses set `target` and the precisions it offers beyond fp32."""

    target: str = ""

    def _export(self, model: Any, out: Path, **kwargs: Any) -> Artifact:
        return _export_to(self.target, model, out, **kwargs)

    @pytest.fixture(scope="class")
    def small(self, tmp_path_factory: pytest.TempPathFactory) -> Artifact:
        """small_vit() exported with export's defaults, once per target: the tests that take it only read it."""
        return self._export(small_vit(), tmp_path_factory.mktemp(self.target) / "small")

    @pytest.mark.slow
    def test_fp32_parity(self, tmp_path: Path) -> None:
        """A timm name at another input size: the loader, position-embedding resampling and the converter."""
        _check_fp32_parity(self.target, "timm-vit-tiny-img160", tmp_path)

    def test_nhwc_input(self, tmp_path: Path) -> None:
        artifact = self._export(small_vit(), tmp_path / "nhwc", layout="nhwc")
        spec = artifact.manifest.input_spec
        assert spec.layout is Layout.NHWC and spec.shape(1) == (1, 32, 32, 3)
        assert artifact.run(parity_inputs(spec, 2)).shape == (2, 10)

    def test_batch_sizes(self, small: Artifact) -> None:
        """ONNX and OpenVINO keep a dynamic batch axis; TFLite is fixed at 1 and the session feeds slices."""
        inputs = parity_inputs(small.manifest.input_spec, 5)
        with torch.no_grad():
            np.testing.assert_allclose(small.run(inputs), small_vit()(torch.from_numpy(inputs)).numpy(), atol=1e-4)

    def test_manifest_records_what_was_done(self, small: Artifact) -> None:
        """Read from the class's export of small_vit(); a distilled model's record is checked with the loader
        cases."""
        artifact = small
        manifest = json.loads((artifact.path / "manifest.json").read_text())
        assert manifest["target"] == self.target and manifest["precision"] == "fp32"
        assert manifest["input_spec"]["img_size"] == 32 and manifest["input_spec"]["layout"] == "NCHW"
        assert len(manifest["source"]["weights_sha256"]) == 64
        assert manifest["source"]["architecture"]["distilled"] is False
        assert manifest["source"]["architecture"]["embed_dim"] == small_vit().cfg.embed_dim
        assert manifest["parity"]["passed"] is True and manifest["parity"]["samples"] == 16
        assert manifest["tool_versions"]["torch"].startswith("2.")
        assert manifest["model_file"] in manifest["files"]
        assert read_manifest(artifact.path, verify_files=True).files == manifest["files"]
        leftovers = [p.name for p in artifact.path.parent.iterdir() if p.name.startswith(".")]
        assert leftovers == [], "staging directories must not survive a successful export"


class Fp16Conformance:
    """For targets that offer FP16 weights."""

    def test_fp16_weights_shrink_the_file_and_keep_parity(self, small: Artifact, tmp_path: Path) -> None:
        fp32 = small
        half = self._export(small_vit(), tmp_path / "fp16", precision="fp16")  # type: ignore[attr-defined]
        parity = half.manifest.parity
        assert half.manifest.precision is Precision.FP16 and parity is not None and parity.passed
        assert parity.min_cosine >= 0.999
        size = lambda a: sum((a.path / f).stat().st_size for f in a.manifest.files)  # noqa: E731
        assert size(half) < 0.75 * size(fp32), "fp16 weights must shrink the file"


class TestOnnxExport(ExportConformance):
    target = "onnx"

    @pytest.fixture(scope="class")
    def small(self, small_onnx: Path) -> Artifact:  # the same export as conftest's, which other files bench
        return Artifact.open(small_onnx)

    def test_graph_is_opset_20_with_symbolic_batch(self, small: Artifact) -> None:
        """Opset 20 by default: GELU is one Gelu op, which ONNX Runtime fuses with the fc1 bias (BiasGelu)."""
        import onnx

        artifact = small
        graph = onnx.load(str(artifact.path / artifact.manifest.model_file))
        assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) == 20
        assert "Gelu" in {n.op_type for n in graph.graph.node} and "Erf" not in {n.op_type for n in graph.graph.node}
        assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic, not a fixed 2
        assert {n.op_type for n in graph.graph.node} >= {"MatMul", "Softmax", "LayerNormalization"}

    def test_last_block_runs_the_class_token_only(self, tmp_path: Path) -> None:
        """The saving is in the file (parity was checked by the export): the last MLP sees the class token alone,
        every other block all 17 tokens; the plain graph keeps all 17 in the last block too."""
        import onnx

        def gelu_tokens(artifact: Artifact) -> list[int]:
            graph = onnx.shape_inference.infer_shapes(onnx.load(str(artifact.path / artifact.manifest.model_file)))
            shapes = {v.name: v.type.tensor_type.shape for v in graph.graph.value_info}
            return [shapes[n.output[0]].dim[1].dim_value for n in graph.graph.node if n.op_type == "Gelu"]

        model = small_vit(depth=3)
        assert gelu_tokens(self._export(model, tmp_path / "o")) == [17, 17, 1]
        plain = model.reconfigured(head_tokens_only=False)
        assert gelu_tokens(self._export(plain, tmp_path / "p")) == [17, 17, 17]


class TestOpenVinoExport(ExportConformance, Fp16Conformance):
    target = "openvino"


class TestTfliteExport(ExportConformance, Fp16Conformance):
    target = "tflite"

    def test_only_builtin_ops(self, small: Artifact) -> None:
        from vit_edge.runtime.litert import tflite_op_names

        artifact = small
        ops = set(tflite_op_names(artifact.path / artifact.manifest.model_file))
        assert {"FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX"} <= ops
        assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops)


class TestExecuTorchExport(ExportConformance):
    target = "executorch"

    def test_xnnpack_takes_the_blocks_and_names_what_it_leaves(self, small: Artifact) -> None:
        """LayerNorm and attention rewritten in XNNPACK's shapes: the blocks are one delegate; the class token's
        expand and the token pooling's select stay on portable kernels, and the artifact says so."""
        artifact = small
        delegation = json.loads((artifact.path / "delegation.json").read_text())
        assert delegation["delegates"] <= 2 and delegation["gemms_in_delegate"]["float linear"] >= 9
        assert delegation["fully_delegated"] is False
        assert delegation["undelegated_ops"] == {"expand_copy": 1, "select_copy": 1}
        parity = artifact.manifest.parity
        delegated = parity.runtime.delegation if parity and parity.runtime else None
        assert delegated is not None and list(delegated.undelegated_ops) == sorted(delegation["undelegated_ops"])
        assert "delegation.json" in artifact.manifest.files  # sha256-checked like the program


def test_every_registered_target_has_a_conformance_subclass() -> None:
    covered = {cls.target for cls in ExportConformance.__subclasses__()}
    assert covered == set(TARGETS), f"targets without conformance tests: {set(TARGETS) - covered}"


def test_onnx_passes_through_onnxruntime_quantization(small_onnx: Path, tmp_path: Path) -> None:
    """ORT's own quantizer runs onnx shape inference first: the exporter's value_info for initializers once
    disagreed with the folded tensors and stopped it with a ShapeInferenceError."""
    from onnxruntime import InferenceSession
    from onnxruntime.quantization import QuantType, quantize_dynamic

    artifact = Artifact.open(small_onnx)  # conftest's, read only: the quantized copy goes to tmp_path
    quantized = tmp_path / "dynamic.onnx"
    quantize_dynamic(str(artifact.path / "model.onnx"), str(quantized), per_channel=True, weight_type=QuantType.QInt8)
    session = InferenceSession(str(quantized), providers=["CPUExecutionProvider"])
    x = parity_inputs(artifact.manifest.input_spec, 2)
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert out.shape == (2, 10) and np.all(np.isfinite(out))
