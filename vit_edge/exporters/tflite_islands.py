"""Float islands in an int8 .tflite: int8 GELU/SOFTMAX/RELU become DEQUANTIZE → float op → QUANTIZE.

litert-torch lowers every op it finds between dequantize and quantize to its int8 kernel. XNNPACK has no int8
GELU or SOFTMAX, nor an int8 RELU that changes the scale (a dense model's head: a convolution's output grid, the
ReLU, the next convolution's input grid), so those ops would fall off the delegate and split the graph into many
partitions. In float,
between the same quantization parameters, both are delegated and compute what the INT8 simulation computes
(dequantize, the float op, quantize), so the rewrite changes where they run, not the numbers.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from vit_edge.core.errors import ExportError

__all__ = ["FLOAT_ISLAND_OPS", "make_float_islands"]

FLOAT_ISLAND_OPS = ("GELU", "SOFTMAX", "RELU")


def make_float_islands(path: Path, op_names: tuple[str, ...] = FLOAT_ISLAND_OPS) -> int:
    """Rewrite `path` in place; return how many ops were moved to float."""
    import ai_edge_litert.schema_py_generated as schema
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    if any((buffer.offset or 0) > 1 for buffer in model.buffers or []):
        raise ExportError(f"{path.name} keeps its weights outside the flatbuffer; float islands are not supported")
    codes = _BuiltinCodes(model, schema)
    wanted = {getattr(schema.BuiltinOperator, name) for name in op_names}
    rewritten = 0
    for subgraph in model.subgraphs:
        operators = []
        for op in subgraph.operators:
            first_input = subgraph.tensors[op.inputs[0]]
            if codes.builtin(op) in wanted and first_input.type == schema.TensorType.INT8:
                operators.extend(_island(op, subgraph, codes, schema))
                rewritten += 1
            else:
                operators.append(op)
        subgraph.operators = operators
    builder = flatbuffers.Builder(max(1024, path.stat().st_size))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return rewritten


def _island(op: Any, subgraph: Any, codes: "_BuiltinCodes", schema: Any) -> list[Any]:
    """DEQUANTIZE(int8 in) → op on float tensors → QUANTIZE(to the op's int8 output)."""
    int8_in, int8_out = op.inputs[0], op.outputs[0]
    float_in = _float_twin(subgraph, int8_in, schema)
    float_out = _float_twin(subgraph, int8_out, schema)
    dequantize = _operator(codes.index("DEQUANTIZE"), [int8_in], [float_in], schema)
    quantize = _operator(codes.index("QUANTIZE"), [float_out], [int8_out], schema)
    op.inputs = [float_in] + list(op.inputs[1:])
    op.outputs = [float_out]
    return [dequantize, op, quantize]


def _float_twin(subgraph: Any, index: int, schema: Any) -> int:
    tensor = copy.copy(subgraph.tensors[index])
    tensor.type, tensor.quantization, tensor.buffer = schema.TensorType.FLOAT32, None, 0
    tensor.name = (tensor.name or b"t") + b"_float" if isinstance(tensor.name, bytes) else f"{tensor.name}_float"
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def _operator(opcode_index: int, inputs: list[int], outputs: list[int], schema: Any) -> Any:
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode_index, inputs, outputs
    return op


class _BuiltinCodes:
    """The model's operator-code table: find an op's builtin code, or the index of one (added if missing)."""

    def __init__(self, model: Any, schema: Any) -> None:
        self.model, self.schema = model, schema

    @staticmethod
    def _builtin_code(code: Any) -> int:
        """Codes above 127 live in `builtinCode`; older files keep small ones in `deprecatedBuiltinCode`."""
        return max(code.builtinCode, code.deprecatedBuiltinCode)

    def builtin(self, op: Any) -> int:
        return self._builtin_code(self.model.operatorCodes[op.opcodeIndex])

    def index(self, name: str) -> int:
        wanted = getattr(self.schema.BuiltinOperator, name)
        for i, code in enumerate(self.model.operatorCodes):
            if self._builtin_code(code) == wanted:
                return i
        code = self.schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = wanted, min(wanted, 127), 2
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1
