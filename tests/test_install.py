"""The install: what install.sh installs with --no-deps imports and has what it requires,
install.sh parses, and a skip that a correct install should never produce fails in CI."""
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import check_imports

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def test_every_no_deps_package_imports_with_its_requirements():
    assert check_imports.problems() == []


def test_check_finds_a_requirement_left_out(monkeypatch):
    real = metadata.distribution

    def without_urllib3(name):
        if name == "urllib3":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(check_imports.metadata, "distribution", without_urllib3)
    found = check_imports.problems()
    assert any(line.startswith("requests requires urllib3") and "add it to install.sh" in line for line in found)


def installed_by_the_scripts() -> set:
    """The distributions that install.sh's pip_install lines and requirements-data.txt name."""
    lines = [line for line in (ROOT / "install.sh").read_text().splitlines() if line.lstrip().startswith("pip_install")]
    lines += [line for line in (ROOT / "requirements-data.txt").read_text().splitlines() if not line.startswith("#")]
    words = re.findall(r"(?<![-\w])([A-Za-z][A-Za-z0-9_.-]*)", " ".join(lines).replace('"', " "))
    return {word.lower().replace("_", "-") for word in words}


def test_install_scripts_name_every_requirement_of_the_no_deps_packages():
    # On this machine everything may be installed anyway: this checks the scripts' lists,
    # which are all that a fresh machine gets (requests' urllib3, idna, certifi and
    # charset-normalizer were missing from them).
    named = installed_by_the_scripts() | {"torch"}
    missing = []
    for dist in check_imports.NO_DEPS:
        for line in metadata.distribution(dist).requires or []:
            requirement = check_imports.Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = requirement.name.lower().replace("_", "-")
            if name not in named and name not in check_imports.LEFT_OUT.get(dist, {}):
                missing.append(f"{dist} -> {name}")
    assert missing == []


def test_install_sh_parses_and_offers_the_torch_choice():
    subprocess.run(["bash", "-n", str(ROOT / "install.sh")], check=True)
    text = (ROOT / "install.sh").read_text()
    assert "TORCH_INDEX_URL" in text and "--cpu-torch" in text and "torch==2.13.0" in text
    readme = (ROOT / "README.md").read_text()
    assert "TORCH_INDEX_URL" in readme and "--cpu-torch" in readme


STRICT_CASES = '''
import pytest

def test_missing_package():
    pytest.skip("tonic is not installed")

@pytest.mark.skipif(True, reason="needs a CUDA GPU")
def test_gpu():
    pass

def test_runs():
    pass
'''


def run_strict(tmp_path, env_extra):
    (tmp_path / "test_cases.py").write_text(STRICT_CASES)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TESTS), "COLUMNS": "400", **env_extra}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "strict_skips", "-p", "no:cacheprovider",
                             "-rfs", str(tmp_path / "test_cases.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout


def test_strict_skips_fail_in_ci_except_for_a_gpu(tmp_path):
    code, out = run_strict(tmp_path, {"CI": "true"})
    assert code == 1 and "1 failed, 1 passed, 1 skipped" in out, out
    assert "skipped with 'tonic is not installed'" in out
    code, out = run_strict(tmp_path, {"SNNFAST_STRICT_SKIPS": "1"})
    assert code == 1 and "1 failed" in out
    code, out = run_strict(tmp_path, {})
    assert code == 0 and "1 passed, 2 skipped" in out, out
