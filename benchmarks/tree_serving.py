"""Tree families: their own predict against ONNX Runtime, the same fitted model, ratios measured in one run.

For each ``--models`` entry (default lightgbm s and random_forest s) on the synthetic shoppers (``--rows``,
default 20,000 as in ``sweeps/trees-vs-nets.yaml``): one fit through the family seam, then the model served
twice, by ``serve.runtime: eager`` (the library's in-process predict) and ``serve.runtime: onnxruntime``
(the converted graph in an ONNX Runtime session), exactly as a trial serves it. Both are scored on the test
rows (the AUCs must agree within 1e-4), then timed by costbench's own ``measure_latency`` at batch 1 and
256 in interleaved rounds whose order alternates; the table gives the median p50 per point and the native
p50 divided by ONNX Runtime's (above 1: ONNX Runtime is faster).

    PYTHONPATH=. python benchmarks/tree_serving.py [--models lightgbm:s,random_forest:s] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from costbench.data.load import load_data
from costbench.evaluate import evaluate
from costbench.families import get_family
from costbench.measure.latency import measure_latency
from costbench.spec import DataConfig, ModelConfig, ServeConfig, TrialConfig

CPU = torch.device("cpu")
RUNTIMES = ("eager", "onnxruntime")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lightgbm:s,random_forest:s")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch-sizes", default="1,256")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=0.3, help="per measurement")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    data = load_data(DataConfig(rows=args.rows, positive_rate=0.08), None)
    timing = ServeConfig(batch_sizes=batches, warmup=20, min_calls=662, min_seconds=args.min_seconds, rounds=1)
    print(f"threads={torch.get_num_threads()}  rows={args.rows}  test rows={len(data.test.label)}")
    print(f"{'model':<16}{'batch':>6}{'native p50 us':>15}{'ORT p50 us':>12}{'native/ORT':>12}"
          f"{'AUC native':>12}{'AUC ORT':>10}{'bytes native':>14}{'bytes ORT':>11}")
    for name in args.models.split(","):
        family_name, size = name.split(":")
        family = get_family(family_name)
        cfg = TrialConfig(model=ModelConfig(family=family_name, size=size), threads=args.threads)
        fitted = family.fit(data, cfg, CPU, lambda _p: None)
        served, auc = {}, {}
        for runtime in RUNTIMES:
            run_cfg = cfg.model_copy(update={"serve": ServeConfig(runtime=runtime)})
            family.check(run_cfg, CPU)
            served[runtime] = family.prepare(fitted, data, run_cfg, CPU)
            auc[runtime] = evaluate(served[runtime].predict, data, cfg.eval, CPU, stage=served[runtime].stage)["auc"]
        if abs(auc["eager"] - auc["onnxruntime"]) >= 1e-4:
            raise SystemExit(f"{name}: ONNX Runtime AUC {auc['onnxruntime']:.6f} != native {auc['eager']:.6f}")
        p50s: dict[tuple[str, int], list[float]] = {}
        for r in range(args.rounds):
            for runtime in RUNTIMES[r % 2:] + RUNTIMES[:r % 2]:
                s = served[runtime]
                result = measure_latency(s.predict, data.test, timing, CPU, stage=s.stage)
                for b in batches:
                    p50s.setdefault((runtime, b), []).append(result["batch_sizes"][str(b)]["p50_ms"])
        for b in batches:
            native, ort = (statistics.median(p50s[(runtime, b)]) for runtime in RUNTIMES)
            print(f"{name:<16}{b:>6}{native * 1000:>15.1f}{ort * 1000:>12.1f}{native / ort:>12.2f}"
                  f"{auc['eager']:>12.4f}{auc['onnxruntime']:>10.4f}{served['eager'].size.model_bytes:>14,}"
                  f"{served['onnxruntime'].size.model_bytes:>11,}", flush=True)


if __name__ == "__main__":
    main()
