"""MLPerf LoadGen scenarios (``serve.scenario``) driving a served model, LoadGen deciding what counts.

- ``single_stream``: one sample per query, the next issued when the last completes; reports LoadGen's
  90th-percentile latency.
- ``offline``: every sample at once; the model takes them in batches of ``serve.max_batch``; reports
  samples per second.
- ``server``: Poisson arrivals at a target QPS. Queries go to one dynamic batcher (``batcher.Batcher``),
  which runs a batch when it holds ``serve.max_batch`` samples or its oldest one has waited
  ``serve.max_wait_ms``. A bisection over the target QPS (``serve.search_steps`` LoadGen runs of
  ``serve.scenario_seconds`` each) finds the highest QPS LoadGen calls VALID with its p99 under
  ``serve.slo_ms``; that QPS, its p99 and LoadGen's verdict of every run are recorded. The search starts
  from the throughput at ``max_batch`` measured by a short offline run.

The SUT keeps LoadGen's own cost per sample small, since on a small CPU it competes with the model for the
GIL and the cores: LoadGen's per-sample JSON trace is off (its summary and detail logs stay), queries arrive
through LoadGen's fast SUT (plain ids and indices, no ``QuerySample`` objects) and completions reuse one
pool of ``QuerySampleResponse`` objects, one ``QuerySamplesComplete`` per batch.

A scenario's time is bounded: each LoadGen run stops issuing after ``RUN_BOUND`` x ``scenario_seconds``
(at least 1 s), and samples still queued then are answered unserved and the run counted INVALID, so a server
search costs at most ``CALIBRATION_RUNS`` calibration runs of 1 s plus ``search_steps`` runs of that bound;
``seconds`` in the result is what it took.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from costbench.runtimes.batcher import Batcher

INSTALL = 'pip install "costbench[serve]"'
CALIBRATION_SECONDS = 0.25
CALIBRATION_RUNS = 3  # each sized by the last one's rate: the first, sized by a guess, is mostly start-up
# The offline run's query is sized for this many times the calibrated rate: LoadGen calls a run that ends
# before min_duration INVALID, and a short calibration underestimates a fast model's rate (here by ~40%).
# A run that still ends early is run once more, sized by the rate it showed.
OFFLINE_MARGIN = 1.5
ENDED_EARLY = "Min duration satisfied: NO"
RUN_BOUND = 4  # a LoadGen run's time bound, in scenario_seconds
P99_MIN_QUERIES = 662  # LoadGen's early-stopping floor for a 99th percentile


def missing_loadgen() -> str | None:
    """Why LoadGen cannot run here, or None."""
    import importlib.util

    if importlib.util.find_spec("mlperf_loadgen") is None:
        return f"serve.scenario needs MLPerf LoadGen (mlcommons-loadgen): {INSTALL}"
    return None


class Responder:
    """Serves a batch of LoadGen samples, ``(id, index)`` pairs, and tells LoadGen they are done.

    Every sample is completed even when serving fails or the run is past its time bound (LoadGen waits for
    each one): the first error is kept for the caller to raise, and ``overran`` makes the run not count."""

    def __init__(self, lg: Any, serve_rows: Callable[[list[int]], None], max_batch: int, deadline: float) -> None:
        self.lg, self.serve_rows, self.deadline = lg, serve_rows, deadline
        self.responses = [lg.QuerySampleResponse() for _ in range(max_batch)]  # copied by QuerySamplesComplete
        self.error: Exception | None = None
        self.overran = False

    def __call__(self, batch: list[tuple[int, int]]) -> None:
        if self.error is None and not self.overran:
            if time.perf_counter() > self.deadline:
                self.overran = True
            else:
                try:
                    self.serve_rows([index for _, index in batch])
                except Exception as error:  # re-raised by the run, after LoadGen has every answer
                    self.error = error
        responses = self.responses[:len(batch)]
        for response, (sample_id, _) in zip(responses, batch, strict=True):
            response.id = sample_id
        self.lg.QuerySamplesComplete(responses)


def rows_server(predict: Callable[..., Any], stage: Callable[[Any, Any], tuple[Any, ...]], split: Any
                ) -> Callable[[list[int]], None]:
    """``predict`` on the rows of ``split`` at the given indices, staged as the trial serves them."""
    def serve_rows(indices: list[int]) -> None:
        predict(*stage(split, torch.tensor(indices, dtype=torch.long)))
    return serve_rows


def run_scenario(predict: Callable[..., Any], stage: Callable[[Any, Any], tuple[Any, ...]], split: Any,
                 serve: Any, out_dir: Path | None = None) -> dict[str, Any]:
    """Run ``serve.scenario`` with LoadGen against ``predict``; a dict for the record's details and metrics."""
    import mlperf_loadgen as lg

    started = time.perf_counter()
    rows = len(split.label)
    serve_rows = rows_server(predict, stage, split)
    sizes = {"max_batch": serve.max_batch, "max_wait_ms": serve.max_wait_ms, "slo_ms": serve.slo_ms,
             "scenario_seconds": serve.scenario_seconds}

    if serve.scenario == "server":
        peak = offline_rate(lg, serve_rows, rows, serve, out_dir)

        def attempt(qps: float) -> tuple[bool, dict[str, Any]]:
            run = one_run(lg, serve_rows, rows, "server", serve, qps=qps, out_dir=out_dir)
            return meets_slo(run, serve.slo_ms), run

        runs, best = bisect_qps(peak, serve.search_steps, attempt)
        return {"scenario": "server", **sizes, "offline_samples_per_s": peak, "runs": runs,
                "max_qps_at_slo": best["target_qps"] if best else None,
                "p99_at_slo_ms": best["p99_ms"] if best else None,
                "verdict": best["verdict"] if best else "no run met the SLO with a VALID result",
                "seconds": time.perf_counter() - started}
    if serve.scenario == "single_stream":
        runs = [one_run(lg, serve_rows, rows, "single_stream", serve, qps=None, out_dir=out_dir)]
    else:
        runs = [one_run(lg, serve_rows, rows, "offline", serve, out_dir=out_dir,
                        qps=offline_rate(lg, serve_rows, rows, serve, out_dir) * OFFLINE_MARGIN)]
        if ENDED_EARLY in runs[0]["invalid_because"] and runs[0]["samples_per_s"]:
            # the model outran its calibration (a warm-up, a short run): size the query by the rate it showed
            runs.append(one_run(lg, serve_rows, rows, "offline", serve, out_dir=out_dir,
                                qps=runs[0]["samples_per_s"] * OFFLINE_MARGIN))
    return {"scenario": serve.scenario, **sizes, "runs": runs, "verdict": runs[-1]["verdict"],
            "seconds": time.perf_counter() - started}


class QpsSearch:
    """The bisection over the target QPS: start at 0.8 x ``peak`` (an offline rate), halve until a try
    passes, then bisect between the best pass and the lowest failure. ``qps`` is the next try; ``tell``
    records its outcome."""

    def __init__(self, peak: float) -> None:
        self.low, self.high, self.qps = 0.0, peak * 1.1, peak * 0.8
        self.runs: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None

    def tell(self, ok: bool, run: dict[str, Any]) -> None:
        self.runs.append({**run, "target_qps": self.qps})
        if ok:
            self.best, self.low = self.runs[-1], self.qps
        else:
            self.high = self.qps
        self.qps = (self.low + self.high) / 2 if self.low > 0 else self.qps / 2


def bisect_qps(peak: float, steps: int, attempt: Callable[[float], tuple[bool, dict[str, Any]]]
               ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The highest target QPS ``attempt`` accepts, found in ``steps`` tries of a ``QpsSearch``. Returns every
    try (with ``target_qps``) and the best passing one, or None."""
    search = QpsSearch(peak)
    for _ in range(steps):
        search.tell(*attempt(search.qps))
    return search.runs, search.best


def meets_slo(run: dict[str, Any], slo_ms: float) -> bool:
    """A server run counts when LoadGen calls it VALID and its p99 is within the SLO."""
    return bool(run["valid"]) and run["p99_ms"] is not None and run["p99_ms"] <= slo_ms


def offline_rate(lg: Any, serve_rows: Callable[[list[int]], None], rows: int, serve: Any,
                  out_dir: Path | None) -> float:
    """Samples per second of a short offline calibration run (its verdict does not count)."""
    rate = 1000.0
    for _ in range(CALIBRATION_RUNS):  # LoadGen sizes the offline query by the expected rate
        rate = one_run(lg, serve_rows, rows, "offline", serve, qps=rate, out_dir=out_dir,
                        seconds=CALIBRATION_SECONDS)["samples_per_s"] or rate
    return rate


def one_run(lg: Any, serve_rows: Callable[[list[int]], None], rows: int, scenario: str, serve: Any,
             qps: float | None, out_dir: Path | None, seconds: float | None = None) -> dict[str, Any]:
    """One LoadGen run in PerformanceOnly mode; its summary read back from LoadGen's own log. ``qps`` is the
    server's target, or the offline run's expected rate (LoadGen sizes its one query by it)."""
    settings = lg.TestSettings()
    settings.mode = lg.TestMode.PerformanceOnly
    seconds_ms = int((serve.scenario_seconds if seconds is None else seconds) * 1000)
    bound_s = max(seconds_ms * RUN_BOUND, 1000) / 1000
    settings.min_duration_ms, settings.max_duration_ms = seconds_ms, int(bound_s * 1000)
    settings.min_query_count = 1
    answer = Responder(lg, serve_rows, serve.max_batch, deadline=time.perf_counter() + bound_s)
    batcher: Batcher | None = None
    issue: Callable[[list[int], list[int]], None]
    if scenario == "server":
        settings.scenario = lg.TestScenario.Server
        settings.server_target_qps = qps
        settings.server_target_latency_ns = int(serve.slo_ms * 1e6)
        settings.server_target_latency_percentile = 0.99
        settings.server_coalesce_queries = True  # queries due together reach the batcher in one callback
        settings.min_query_count = max(P99_MIN_QUERIES, int(qps * serve.scenario_seconds))
        server = batcher = Batcher(answer, serve.max_batch, serve.max_wait_ms / 1000)

        def issue(ids: list[int], indices: list[int]) -> None:
            server.add(list(zip(ids, indices, strict=True)))
    elif scenario == "offline":
        settings.scenario = lg.TestScenario.Offline
        settings.offline_expected_qps = qps

        def issue(ids: list[int], indices: list[int]) -> None:
            samples = list(zip(ids, indices, strict=True))
            for start in range(0, len(samples), serve.max_batch):
                answer(samples[start:start + serve.max_batch])
    else:
        settings.scenario = lg.TestScenario.SingleStream
        settings.single_stream_expected_latency_ns = 100_000
        settings.min_query_count = P99_MIN_QUERIES

        def issue(ids: list[int], indices: list[int]) -> None:
            answer(list(zip(ids, indices, strict=True)))

    sut = lg.ConstructFastSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(rows, rows, lambda _s: None, lambda _s: None)
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(out_dir or tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        output = lg.LogOutputSettings()
        output.outdir, output.copy_summary_to_stdout = str(log_dir), False
        log = lg.LogSettings()
        log.log_output, log.enable_trace = output, False
        start = time.perf_counter()
        try:
            lg.StartTestWithLogSettings(sut, qsl, settings, log)
        finally:
            if batcher is not None:
                batcher.stop()
            lg.DestroyQSL(qsl)
            lg.DestroyFastSUT(sut)
        summary = (log_dir / "mlperf_log_summary.txt").read_text()
    if answer.error is not None:
        raise answer.error
    run = {**parse_summary(summary), "scenario": scenario, "target_qps": qps,
           "wall_s": time.perf_counter() - start, "batches": batcher.batches if batcher else None}
    if answer.overran:
        run.update(valid=False, verdict="INVALID", p99_ms=None, p90_ms=None, samples_per_s=None,
                   invalid_because=[*run["invalid_because"], f"costbench: still serving at the run's time bound "
                                    f"({bound_s:g} s); the samples left were answered unserved, so LoadGen's "
                                    "figures for this run are not used"])
    return run


def parse_summary(text: str) -> dict[str, Any]:
    """LoadGen's summary: its verdict, why a run is INVALID, samples/s and the latency percentiles."""
    def number(label: str) -> float | None:
        found = re.search(rf"^{re.escape(label)}\s*:\s*([\d.eE+-]+)", text, re.MULTILINE)
        return float(found.group(1)) if found else None

    verdict = re.search(r"Result is\s*:\s*(\w+)", text)
    why = [line.strip().replace(" :", ":") for line in text.splitlines() if re.search(r"satisfied\s*:\s*NO", line)]
    p99, p90 = number("99.00 percentile latency (ns)"), number("90.00 percentile latency (ns)")
    samples = number("Samples per second") or number("Completed samples per second")
    return {"verdict": verdict.group(1) if verdict else "unknown", "valid": bool(verdict and
                                                                              verdict.group(1) == "VALID"),
            "invalid_because": why, "samples_per_s": samples,
            "p99_ms": p99 / 1e6 if p99 is not None else None, "p90_ms": p90 / 1e6 if p90 is not None else None}
