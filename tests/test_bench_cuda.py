"""The GPU run's scripts, checked without a GPU: bench/bench_cuda.py's --dry-run times tiny
shapes on the CPU and writes every table; its section runner keeps going past a section that
raises and stops at its time budget, with every table written as it ends; bench/run_gpu.sh
parses, refuses clearly where no GPU is found, and its dry run goes through every stage's
plumbing (the sanitizers' workload on the CPU, the benchmark's dry run, the summary)."""
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "bench_cuda.py"
RUN_GPU = ROOT / "bench" / "run_gpu.sh"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_cuda", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def markdown_tables(report):
    return [block for block in report.split("\n\n") if block.startswith("|")]


def json_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_dry_run_writes_every_table(tmp_path):
    out = tmp_path / "report.md"
    assert load_bench().main(["--dry-run", "--out", str(out)]) == 0
    report = out.read_text()
    assert "- Device: CPU" in report
    assert "- Command: `python3 bench/bench_cuda.py --dry-run --out" in report
    for section in ("(a) Time", "(b) Effective bandwidth", "(c) IMP overhead", "(d) SHD regime",
                    "(e) snnfast.recurrent_lif", "(f) event_linear vs cuBLAS"):
        assert f"## {section}" in report
    # Every table row has as many cells as its header.
    tables = markdown_tables(report)
    assert len(tables) == 6
    for table in tables:
        widths = {line.count("|") for line in table.splitlines()}
        assert len(widths) == 1 and len(table.splitlines()) > 2
    # The JSON lines hold every row and every table's status.
    records = json_lines(tmp_path / "report.jsonl")
    statuses = {r["table"]: r["status"] for r in records if "status" in r}
    assert statuses == dict.fromkeys("abcdef", "ok")
    rows = [r for r in records if "row" in r]
    assert len(rows) == sum(len(t.splitlines()) - 2 for t in tables)


def fake_bench(module, tmp_path, budget=None):
    args = module.parse_args(["--dry-run", "--out", str(tmp_path / "r.md")])
    args.time_budget = budget
    report = module.Report(str(tmp_path / "r.md"), str(tmp_path / "r.jsonl"))
    return module.Bench(args, torch.device("cpu"), report)


def test_a_failing_section_keeps_its_rows_and_the_next_section_runs(tmp_path):
    module = load_bench()
    bench = fake_bench(module, tmp_path)

    def broken(bench):
        table = bench.table("x", "(x) broken", ["n", "value"])
        table.add([1, "one"])
        raise ValueError("a peer's backend broke")

    def working(bench):
        bench.table("y", "(y) working", ["n"]).add([2])

    def broken_before_any_table(bench):
        raise ImportError("no such module")

    results = module.run_sections(bench, [("x", broken), ("z", broken_before_any_table),
                                          ("y", working)])
    assert [(key, status) for key, status, _, _ in results] == [
        ("x", "failed"), ("z", "failed"), ("y", "ok")]
    report = (tmp_path / "r.md").read_text()
    assert "## (x) broken" in report and "**failed**: ValueError: a peer's backend broke" in report
    assert "| 1 | one |" in report and "## (y) working" in report and "| 2 |" in report
    assert "ImportError: no such module" in report
    statuses = {r["table"]: (r["status"], r["rows"]) for r in json_lines(tmp_path / "r.jsonl")
                if "status" in r}
    assert statuses == {"x": ("failed", 1), "z": ("failed", 0), "y": ("ok", 1)}


def test_each_table_is_on_disk_before_the_next_section_starts(tmp_path):
    module = load_bench()
    bench = fake_bench(module, tmp_path)
    seen = []

    def first(bench):
        bench.table("p", "(p) first", ["n"]).add([7])

    def second(bench):
        seen.append((tmp_path / "r.md").read_text())

    module.run_sections(bench, [("p", first), ("q", second)])
    assert "| 7 |" in seen[0]


def test_the_time_budget_stops_between_rows(tmp_path):
    module = load_bench()
    bench = fake_bench(module, tmp_path, budget=0.0)
    calls = []

    def rows(bench):
        table = bench.table("t", "(t) timed", ["n"])
        for n in range(3):
            bench.before_row(f"{n} of 3 rows")
            calls.append(n)
            table.add([n])

    (result,) = module.run_sections(bench, [("t", rows)])
    assert result[1] == "partial" and "after 0 of 3 rows" in result[2] and calls == []
    assert "**partial**: stopped by the time budget" in (tmp_path / "r.md").read_text()


def test_a_failing_peer_loses_only_its_own_columns(tmp_path):
    module = load_bench()
    bench = fake_bench(module, tmp_path)
    bench.sj = object()  # present, until its first measurement raises

    def broken_peer():
        raise RuntimeError("CUDA_ERROR_NO_BINARY_FOR_GPU")

    assert bench.peer(broken_peer) is None
    assert bench.sj is None and "CUDA_ERROR_NO_BINARY_FOR_GPU" in bench.sj_status()
    assert bench.peer(lambda: 1.0) is None  # no further calls of the peer


def test_unknown_section_is_refused():
    with pytest.raises(SystemExit, match="unknown section"):
        load_bench().selected_sections("az")


def test_help():
    result = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True,
                            text=True, check=True)
    assert "--time-budget" in result.stdout and "--dry-run" in result.stdout


def test_sanitizer_workload_runs_on_the_cpu():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "sanitize_cuda.py"),
                             "--device", "cpu"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 11 and all(line.endswith(": ok") for line in lines)
    assert any("[3, 2, 300]" in line for line in lines)  # the per-step recurrent path
    assert sum("on events" in line for line in lines) == 3 and any("on bits" in line for line in lines)


def test_run_gpu_script_parses():
    subprocess.run(["bash", "-n", str(RUN_GPU)], check=True)


def gpu_present():
    if torch.cuda.is_available() or shutil.which("nvidia-smi") is None:
        return torch.cuda.is_available()
    listed = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                            capture_output=True, text=True)
    return listed.returncode == 0 and listed.stdout.strip() != ""


def run_gpu_script(tmp_path, **env):
    environment = {**os.environ, "OUT": str(tmp_path), **env}
    return subprocess.run(["bash", str(RUN_GPU)], capture_output=True, text=True,
                          env=environment, cwd=ROOT, timeout=300)


@pytest.mark.skipif(gpu_present(), reason="a GPU is present: the script would run for real")
def test_run_gpu_without_a_gpu_says_so(tmp_path):
    result = run_gpu_script(tmp_path)
    assert result.returncode == 2
    assert "no GPU found" in result.stdout and "SNNFAST_GPU_DRY_RUN=1" in result.stdout


def test_run_gpu_dry_run(tmp_path):
    result = run_gpu_script(tmp_path, SNNFAST_GPU_DRY_RUN="1", BENCH_ARGS="--sections e")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = (tmp_path / "summary.txt").read_text()
    assert result.stdout.endswith(summary)
    for stage, verdict in (("build", "skipped"), ("tests", "skipped"), ("workload", "pass"),
                           ("bench", "pass")):
        assert any(line.split()[:2] == [stage, verdict + (":" if verdict == "skipped" else "")]
                   for line in summary.splitlines()), summary
    assert "section (e): ok" in summary and "RESULT: every stage that ran passed" in summary
    assert "## (e) snnfast.recurrent_lif" in (tmp_path / "benchmarks_cuda.md").read_text()
    # Within the device tool's limit of eight files back.
    assert len(list(tmp_path.iterdir())) <= 8


def test_run_gpu_budget_spent_skips_stages(tmp_path):
    result = run_gpu_script(tmp_path, SNNFAST_GPU_DRY_RUN="1", SNNFAST_GPU_BUDGET_S="12")
    summary = (tmp_path / "summary.txt").read_text()
    assert "bench      skipped: no time left in the 12 s budget" in summary, summary
    assert result.returncode == 0


@pytest.mark.skipif(torch.version.cuda is not None, reason="torch has CUDA: the build would run")
def test_run_gpu_refuses_to_build_without_cuda_torch(tmp_path):
    """The GPU branch, on a machine whose nvidia-smi (a stub here) lists a GPU but whose torch
    has no CUDA: setup.py would build the CPU kernels alone, so the build stage fails with the
    reason, and every later stage says it was skipped for it."""
    stub = tmp_path / "bin" / "nvidia-smi"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\necho 9.0\n")
    stub.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    result = run_gpu_script(out, PATH=f"{stub.parent}{os.pathsep}{os.environ['PATH']}")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "TORCH_CUDA_ARCH_LIST=9.0" in (out / "setup.log").read_text()
    assert "cannot build the CUDA kernels: torch.version.cuda = None" in (out / "setup.log").read_text()
    summary = (out / "summary.txt").read_text()
    assert "build      FAIL (status 1)" in summary
    for stage in ("tests", "memcheck", "racecheck", "bench"):
        assert f"{stage.ljust(10)} skipped: the build failed" in summary
    assert "RESULT: FAILED" in summary
