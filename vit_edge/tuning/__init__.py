"""`vit-edge tune`: measure candidate recipes on the device that will run them, keep the latency–accuracy Pareto
front, and pick the fastest artifact within an accuracy budget.

A candidate is an artifact (FP32, INT8 of every matmul, or INT8 of the linear layers only, with Q·Kᵀ and
attn·V in float; each with a token-merging r) times its run-time settings (threads; OpenVINO's precision hint).
The model is loaded once (tuning/run.py); tuning/plan.py says what is tried, tuning/results.py what was found.
Accuracy is top-1 on the labelled `--eval` data computed by the runtime on the device, and the drop is measured from the
unmerged FP32 artifact on the same device. Every row reaches OUT/tune.json as soon as it is measured, so a tune
that stops half-way keeps what it found.
"""
from __future__ import annotations

from vit_edge.tuning.plan import PRECISIONS, Candidate, TuneConfig, TuneRow, candidates, default_merges, pareto_front
from vit_edge.tuning.run import tune

__all__ = ["TuneConfig", "Candidate", "TuneRow", "PRECISIONS", "tune", "candidates", "pareto_front", "default_merges"]
