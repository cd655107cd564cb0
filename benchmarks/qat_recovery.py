"""QAT recovers what PTQ loses: the documented configuration on the shipped Fashion-MNIST ViT, end to end.

The configuration (hardware-style constraints that cost PTQ accuracy): one weight scale per matrix
(`--per-tensor-weights`), INT8 inputs to Softmax and GELU (`--quantize-inputs-of softmax,gelu`) and entropy (KL)
calibration applied to every tensor including the attention logits and probabilities (`--clip-attention`), as
TensorRT's entropy calibrator does. PTQ with it, then QAT (3 epochs, LSQ scales, FP32 teacher) exported to ONNX,
OpenVINO and TFLite; every accuracy is measured on the 10,000 Fashion-MNIST test images, the artifacts' in their
own runtimes.

    .venv/bin/python benchmarks/qat_recovery.py [--epochs 3] [--max-steps N] [--out reports/qat]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from vit_edge.api import QuantizeConfig, quantize
from vit_edge.data.datasets import load_fashion_mnist
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.quantization.qat import QatConfig, QatTraining
from vit_edge.quantization.recipe import Recipe

RECIPE = Recipe(per_tensor_weights=True, nonlinear_inputs=("softmax", "gelu"), calibration="entropy",
                keep_attention_range=False)
TARGETS = ("onnx", "openvino", "tflite")


def runtime_top1(artifact, test) -> float:
    logits = artifact.run(preprocess_uint8(test.images, artifact.manifest.input_spec), threads=2)
    return 100 * float(np.mean(logits.argmax(1) == test.labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--out", default="reports/qat")
    args = parser.parse_args()
    out, test = Path(args.out), load_fashion_mnist("test")
    ptq_config = QuantizeConfig("fashion-mnist-train", RECIPE, eval_data="fashion-mnist")
    common = dict(force=True, log=lambda line: print(line, flush=True))
    ptq = quantize("fmnist-vit-tiny", "onnx", out / "ptq-onnx", ptq_config, **common)
    scored = ptq.manifest.quantization.accuracy
    rows = [("PTQ", "onnx", scored.fp32_top1, scored.int8_top1, runtime_top1(ptq, test))]
    config = QatConfig(epochs=args.epochs, lsq=True, distill=True, max_steps=args.max_steps)
    started = time.time()
    for index, target in enumerate(TARGETS):  # trained once; the other targets resume the finished run
        request = QatTraining("fashion-mnist-train", config, out / "checkpoints", resume=index > 0, force=index == 0)
        artifact = quantize("fmnist-vit-tiny", target, out / f"qat-{target}", replace(ptq_config, qat=request),
                            **common)
        accuracy = artifact.manifest.quantization.accuracy
        rows.append(("QAT", target, accuracy.fp32_top1, accuracy.int8_top1, runtime_top1(artifact, test)))
        if index == 0:
            print(f"QAT took {time.time() - started:.0f} s", flush=True)
    print(f"\n{'method':<7}{'target':<10}{'FP32 %':>8}{'INT8 (PyTorch) %':>18}{'INT8 (runtime) %':>18}{'drop pt':>9}")
    for method, target, fp32, simulated, measured in rows:
        print(f"{method:<7}{target:<10}{fp32:>8.2f}{simulated:>18.2f}{measured:>18.2f}{fp32 - measured:>9.2f}")


if __name__ == "__main__":
    main()
