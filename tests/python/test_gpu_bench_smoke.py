"""benchmarks/gpu_bench.py runs end to end in its CPU smoke mode (--device cpu --tiny): the
numpy-written checkpoint loads, every section produces its numbers, and the start-up log is
parsed into phases. The GPU numbers themselves come from running it on a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_gpu_bench_cpu_smoke(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "gpu_bench.py"), "--device", "cpu", "--tiny",
                        "--no-hf", "--cache-dir", str(tmp_path / "models"), "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["decode"]["tokens_per_s"] > 0 and res["decode"]["copy_bandwidth_gb_s"] > 0
    assert res["offline"]["requests"] == 12 and res["offline"]["output_tokens_per_s"] > 0
    assert {"graphs_b1_ms_per_step", "eager_b4_ms_per_step", "speedup_b4"} <= set(res["graphs"])
    assert res["startup"]["engine_startup_s"] is not None and "phase_load_weights_s" in res["startup"]
