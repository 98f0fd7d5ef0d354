"""Prometheus metrics of one server, in its own registry, under the ``pagedllm:`` prefix with
vLLM's metric names where one exists.

Engine gauges and counters are read from the engine's latest snapshot at scrape time;
per-request histograms are observed when a request finishes or is aborted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pagedllm.entrypoints.openai.async_engine import AsyncEngine, RequestStream
from pagedllm.outputs import RequestOutput

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
_TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
                 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
                 80.0)
_TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000,
                  100000)
_PREFIX_STAT = re.compile(r"num_prefix_cache_(\w+)")


class _EngineCollector(Collector):
    """Gauges and counters from the engine's snapshot."""

    def __init__(self, engine: AsyncEngine, model_name: str) -> None:
        self.engine = engine
        self.model_name = model_name

    def collect(self) -> Iterator[Metric]:
        stats = self.engine.snapshot.stats
        labels = ["model_name"]
        value = [self.model_name]

        def gauge(name: str, doc: str, number: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"pagedllm:{name}", doc, labels=labels)
            family.add_metric(value, number)
            return family

        def counter(name: str, doc: str, number: float) -> CounterMetricFamily:
            family = CounterMetricFamily(f"pagedllm:{name}", doc, labels=labels)
            family.add_metric(value, number)
            return family

        total = stats.get("num_kv_blocks_total", 0)
        used = stats.get("num_kv_blocks_used", 0)
        yield gauge("num_requests_running", "Sequences in the running batch.",
                    stats.get("num_running", 0))
        yield gauge("num_requests_waiting", "Sequences waiting to be scheduled, including "
                    "requests not yet handed to the engine.", self.engine.num_waiting_samples)
        yield gauge("kv_cache_usage_perc", "Fraction of KV-cache blocks in use (0 to 1).",
                    used / total if total else 0.0)
        yield gauge("num_kv_blocks_total", "KV-cache blocks in the pool.", total)
        yield gauge("num_kv_blocks_used", "KV-cache blocks in use.", used)
        yield gauge("num_kv_blocks_free", "KV-cache blocks free.", total - used)
        yield gauge("num_kv_slots_used", "Tokens whose KV is stored.",
                    stats.get("num_kv_slots_used", 0))
        if "num_cached_blocks" in stats:
            yield gauge("num_kv_blocks_cached", "Free KV-cache blocks still holding a cached "
                        "prefix (reusable, evictable).", stats["num_cached_blocks"])
        if "kv_internal_waste" in stats:
            yield gauge("kv_internal_waste", "Unused slots in the KV blocks of running "
                        "requests, as a fraction of their slots.", stats["kv_internal_waste"])
        yield gauge("engine_alive", "1 while the engine loop runs.",
                    1.0 if self.engine.is_alive else 0.0)
        yield counter("num_preemptions", "Preemptions since start.",
                      stats.get("num_preemptions", 0))
        yield counter("prompt_tokens", "Prompt tokens computed since start (recomputation "
                      "after preemption included).", stats.get("num_prompt_tokens_computed", 0))
        yield counter("generation_tokens", "Tokens generated since start.",
                      stats.get("num_generation_tokens", 0))
        yield counter("engine_steps", "Engine iterations since start.",
                      stats.get("num_steps", 0))
        for key, number in stats.items():
            match = _PREFIX_STAT.fullmatch(key)
            if match:
                yield counter(f"prefix_cache_{match.group(1)}",
                              f"Prefix cache {match.group(1).replace('_', ' ')} since start.",
                              number)


class ServerMetrics:
    """The registry of one app plus the per-request observations."""

    def __init__(self, engine: AsyncEngine, model_name: str) -> None:
        self.model_name = model_name
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(engine, model_name))
        labels = ["model_name"]

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Any:
            return Histogram(f"pagedllm:{name}", doc, labels, registry=self.registry,
                             buckets=buckets).labels(model_name)

        self.ttft = histogram("time_to_first_token_seconds", "Time to first token.",
                              _LATENCY_BUCKETS)
        self.tpot = histogram("time_per_output_token_seconds",
                              "Mean time per output token after the first, per request.",
                              _TPOT_BUCKETS)
        self.e2e = histogram("e2e_request_latency_seconds", "Arrival to finish.",
                             _LATENCY_BUCKETS)
        self.queue = histogram("request_queue_time_seconds",
                               "Arrival to the start of the first step that scheduled the "
                               "request (inferred FCFS from the engine's waiting count).",
                               _LATENCY_BUCKETS)
        self.prompt_tokens = histogram("request_prompt_tokens", "Prompt tokens per request.",
                                       _TOKEN_BUCKETS)
        self.generation_tokens = histogram("request_generation_tokens",
                                           "Generated tokens per request (all samples).",
                                           _TOKEN_BUCKETS)
        self.success = Counter("pagedllm:request_success", "Finished requests by reason.",
                               ["model_name", "finished_reason"], registry=self.registry)
        self.aborted = Counter("pagedllm:request_aborted",
                               "Requests aborted (client gone, shutdown).", labels,
                               registry=self.registry).labels(model_name)
        self.rejected = Counter("pagedllm:request_rejected",
                                "Requests refused because the waiting queue was full.",
                                labels, registry=self.registry).labels(model_name)

    def request_finished(self, stream: RequestStream, output: RequestOutput | None) -> None:
        """Observes a request that finished (``output`` is its final delta) or was aborted
        (``output`` is None)."""
        if output is None:
            self.aborted.inc()
            return
        metrics = output.metrics
        arrival = stream.arrival_time
        if stream.scheduled_time is not None:
            self.queue.observe(max(0.0, stream.scheduled_time - arrival))
        if metrics is not None:
            if metrics.first_token_time is not None:
                self.ttft.observe(max(0.0, metrics.first_token_time - arrival))
                per_sample = stream.num_generation_tokens / max(1, stream.num_outputs)
                if metrics.last_token_time is not None and per_sample > 1:
                    self.tpot.observe((metrics.last_token_time - metrics.first_token_time)
                                      / (per_sample - 1))
            end = metrics.finished_time or metrics.last_token_time
            if end is not None:
                self.e2e.observe(max(0.0, end - arrival))
        self.prompt_tokens.observe(len(output.prompt_token_ids))
        self.generation_tokens.observe(stream.num_generation_tokens)
        for completion in output.outputs:
            if completion.finish_reason is not None:
                self.success.labels(self.model_name, completion.finish_reason).inc()
                break

    def render(self) -> bytes:
        return generate_latest(self.registry)
