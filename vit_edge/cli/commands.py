"""One function per verb: build the options objects from the flags, call vit_edge.api, print the result.

Each flag's dest is the name of the options field it fills, so `_fields` maps them and nothing is repacked here.
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Callable

from vit_edge.cli import printing
from vit_edge.core.progress import write

if TYPE_CHECKING:
    from vit_edge.core.summaries import QuantSummary

__all__ = ["COMMANDS"]


def _log(message: str) -> None:
    """On stderr, below any progress bar (core/progress.write) rather than through it."""
    write(message)


def _warn(lines: list[str]) -> None:
    """Sanity warnings (core/sanity.py): on stderr, after the result they qualify."""
    for line in lines:
        print(f"vit-edge: warning: {line}", file=sys.stderr)


def _quantize_warnings(quantization: QuantSummary | None) -> list[str]:
    """A labelled evaluation whose FP32 top-1 is at chance: the INT8 numbers beside it mean nothing either."""
    from vit_edge.core.sanity import accuracy_warning

    if quantization is None:
        return []
    accuracy = quantization.accuracy
    found = accuracy_warning("FP32 on the --eval images", accuracy.fp32_top1, accuracy.labelled_classes,
                             accuracy.fp32_top_class_share)
    return [found] if found else []


def _fields(args: argparse.Namespace, kind: Any, **given: Any) -> Any:
    """`kind` (an options dataclass) built from the flags whose dest names one of its fields (lists as tuples),
    with `given` on top."""
    names = kind.__dataclass_fields__
    found = {name: tuple(value) if isinstance(value, list) else value for name, value in vars(args).items()
             if name in names}
    return kind(**{**found, **given})


def _data_options(args: argparse.Namespace) -> Any:
    from vit_edge.data.sources import DataOptions

    return _fields(args, DataOptions)


def _export_options(args: argparse.Namespace) -> Any:
    from vit_edge.core.options import ExportOptions, ReIDOptions

    return _fields(args, ExportOptions, reid=_fields(args, ReIDOptions))


def _cmd_export(args: argparse.Namespace) -> int:
    from vit_edge.api import export

    artifact = export(args.model, options=_export_options(args), out=args.out, weights=args.weights,
                      random_init=args.random_init, data=args.data, max_drop=args.max_drop,
                      data_options=_data_options(args), log=_log)
    print(printing.export_line(artifact.path, artifact.manifest))
    printing.print_delegation(artifact.manifest.parity)
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    from vit_edge.api import QuantizeConfig, quantize
    from vit_edge.quantization.recipe import Recipe

    qat = None
    if args.method == "qat":
        from vit_edge.quantization.qat import QatConfig, QatTraining

        qat = QatTraining(args.data, _fields(args, QatConfig), args.checkpoint_dir, args.resume, args.force)
    config = _fields(args, QuantizeConfig, recipe=_fields(args, Recipe), qat=qat, data_options=_data_options(args))
    artifact = quantize(args.model, out=args.out, config=config, options=_export_options(args), log=_log)
    if artifact is None:  # a torchrun rank other than 0: rank 0 writes and reports
        return 0
    print(printing.quantize_line(artifact.path, artifact.manifest))
    _warn(_quantize_warnings(artifact.manifest.quantization))
    npu = printing.npu_line(artifact.manifest)
    if npu:
        print(npu)
    printing.print_delegation(artifact.manifest.parity)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from vit_edge.api import train

    metrics = train(args.out, data=args.data, eval_data=args.eval_data, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, seed=args.seed, force=args.force, log=_log)
    print(f"{args.out}  (test top-1 {metrics['test_top1']:.2f}% after {metrics['epoch']} epochs)")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import json

    from vit_edge.api import info

    manifest = info(args.artifact)
    if args.json:
        print(json.dumps(manifest.to_json(), indent=2))
        return 0
    for key, value in printing.info_rows(manifest, args.artifact):
        print(f"{key:>10}  {value}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from vit_edge.api import bench, bench_table
    from vit_edge.benchmarking.fleet import Fleet, read_devices_file
    from vit_edge.benchmarking.record import BenchRecord
    from vit_edge.benchmarking.report import append_records, write_reports
    from vit_edge.benchmarking.sanity import warnings_for
    from vit_edge.benchmarking.sweep import BenchConfig
    from vit_edge.core.outputs import OutputKind, check_output, check_writable, clear_output

    listed = [*args.addresses, *(read_devices_file(args.devices) if args.devices else [])]
    fleet = Fleet.of(listed)  # a duplicate stops here, before the report folder is made; checked only here
    cfg = _fields(args, BenchConfig, data_options=_data_options(args))
    inputs = [("the artifact", path) for path in args.artifacts] + [("the data", args.data)]
    check_output(args.out, OutputKind.BENCH_REPORT, args.force, inputs)  # the user's files are never replaced
    check_writable(args.out)  # a read-only or missing report folder is found before measuring, not after
    cleared = [False]

    def keep(found: list[BenchRecord]) -> None:  # each artifact's rows reach bench.jsonl as soon as they exist
        if not cleared[0]:  # the old report goes once there is a new one to take its place
            clear_output(args.out, OutputKind.BENCH_REPORT, args.force)
            cleared[0] = True
        append_records(found, args.out)

    records = bench(args.artifacts, cfg, devices=fleet, progress=_log, on_records=keep)
    paths = write_reports(records, args.out, append_jsonl=False)
    print(bench_table(records))
    print("reports: " + ", ".join(str(p) for p in paths.values()))
    _warn(warnings_for(records))
    failed = [r for r in records if not r.ok]
    if failed:
        print(f"vit-edge: error: {len(failed)} of {len(records)} configurations failed; the status column says why",
              file=sys.stderr)
        return 2
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from vit_edge.benchmarking.inventory import inventory

    for line in inventory():
        print(line)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from vit_edge.reading.catalog import model_rows

    for line in model_rows(family=args.family, unsupported=args.unsupported):
        print(line)
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from vit_edge.tuning import TuneConfig, tune

    result = tune(args.model, _fields(args, TuneConfig, data_options=_data_options(args)), args.out,
                  weights=args.weights, random_init=args.random_init, force=args.force, log=_log)
    for line in printing.tune_table(result, args.out, args.max_drop):
        print(line)
    return 0


def _in_flag_words(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The verb's errors keep naming flags (the API's own callers read keywords: core/words.py)."""
    def run(args: argparse.Namespace) -> int:
        from vit_edge.core.words import flag_words

        with flag_words():
            return command(args)

    return run


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {name: _in_flag_words(command) for name, command in {
    "export": _cmd_export, "quantize": _cmd_quantize, "train": _cmd_train, "info": _cmd_info, "bench": _cmd_bench,
    "tune": _cmd_tune, "devices": _cmd_devices, "models": _cmd_models,
}.items()}
