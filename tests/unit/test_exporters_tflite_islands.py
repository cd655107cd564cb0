"""The TFLite float-islands rewrite on a hand-built int8 flatbuffer: no converter, the real schema and runtime."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")

from vit_edge.exporters.tflite_islands import make_float_islands  # noqa: E402

IN_SCALE, OUT_SCALE = 0.05, 1.0 / 256


def _tensor(name: str, scale: float, zero_point: int) -> object:
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = name.encode(), [1, 8], schema.TensorType.INT8, 0
    tensor.quantization = schema.QuantizationParametersT()
    tensor.quantization.scale, tensor.quantization.zeroPoint = [scale], [zero_point]
    return tensor


def int8_softmax_model(path: Path) -> Path:
    """One int8 SOFTMAX, as litert-torch writes it between a dequantize and a quantize."""
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SOFTMAX
    code.version = 2
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    op.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
    op.builtinOptions = schema.SoftmaxOptionsT()
    op.builtinOptions.beta = 1.0
    subgraph = schema.SubGraphT()
    subgraph.tensors = [_tensor("x", IN_SCALE, 0), _tensor("y", OUT_SCALE, -128)]
    subgraph.inputs, subgraph.outputs, subgraph.operators = [0], [1], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [subgraph], [schema.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def _run(path: Path, x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    ops = [op["op_name"] for op in interp._get_ops_details()]
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy(), ops


def test_int8_softmax_becomes_a_float_island_with_the_same_quantization(tmp_path: Path) -> None:
    path = int8_softmax_model(tmp_path / "m.tflite")
    x = np.array([[-40, -3, 0, 5, 17, 30, 60, 100]], dtype=np.int8)
    before, ops_before = _run(path, x)
    assert ops_before == ["SOFTMAX"]
    assert make_float_islands(path) == 1
    after, ops_after = _run(path, x)
    assert ops_after == ["DEQUANTIZE", "SOFTMAX", "QUANTIZE"]
    expected = np.exp(x * IN_SCALE) / np.exp(x * IN_SCALE).sum()  # float softmax, then the output's int8 grid
    grid = np.clip(np.round(expected / OUT_SCALE) - 128, -128, 127).astype(np.int8)
    assert after.dtype == np.int8 and np.abs(after.astype(int) - grid.astype(int)).max() <= 1
    assert np.abs(after.astype(int) - before.astype(int)).max() <= 2  # the int8 kernel computed the same numbers


def test_float_ops_and_unlisted_ops_are_left_alone(tmp_path: Path) -> None:
    path = int8_softmax_model(tmp_path / "m.tflite")
    original = path.read_bytes()
    assert make_float_islands(path, op_names=("GELU",)) == 0  # no GELU here: nothing moves
    x = np.zeros((1, 8), dtype=np.int8)
    assert _run(path, x)[1] == ["SOFTMAX"] and len(path.read_bytes()) <= len(original) + 64
