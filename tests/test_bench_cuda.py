"""bench/bench_cuda.py runs end to end: its --dry-run times tiny shapes on the CPU and writes
the markdown report, so that the GPU benchmark does not first fail on a lent GPU."""
import importlib.util
import pathlib

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_cuda.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_cuda", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_writes_every_table(tmp_path):
    out = tmp_path / "report.md"
    load_bench().main(["--dry-run", "--out", str(out)])
    report = out.read_text()
    assert "- Device: CPU" in report
    assert "- Command: `python bench/bench_cuda.py --dry-run --out" in report
    for section in ("(a) Time", "(b) Effective bandwidth", "(c) IMP overhead", "(d) SHD regime"):
        assert f"## {section}" in report
    # Every table row has as many cells as its header.
    tables = [block for block in report.split("\n\n") if block.startswith("|")]
    assert len(tables) == 4
    for table in tables:
        widths = {line.count("|") for line in table.splitlines()}
        assert len(widths) == 1 and len(table.splitlines()) > 2
