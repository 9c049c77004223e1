"""The package layout the README describes: imports go one way between the folders, and every
path of the README's layout section exists."""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "snnfast"

# The op layer: the package snnfast/ops/ and the two modules beside it that the ops use.
OP_LAYER = {"ops", "_C", "surrogate", "output_cache"}
# What each part may import from snnfast besides itself (README.md, Layout).
ALLOWED = {
    "ops": set(),
    "longseq": {"ops"},
    "nn": {"ops", "longseq"},
    "models": {"nn", "ops"},
    "convert": {"nn", "ops"},
    "losses": set(),
    "utils": {"ops"},
    "data": {"utils", "ops"},
    "train": {"ops", "longseq", "nn", "models", "convert", "losses", "utils", "data"},
}


def part(module: str):
    """The part of the layout a module `snnfast.X...` belongs to; None for the package's own
    entry points (__init__, __main__, _moved), which may import anything."""
    name = module.split(".")[1] if "." in module else ""
    if name in OP_LAYER:
        return "ops"
    if name in ("_convert", "nir"):
        return "convert"
    if name in ALLOWED:
        return name
    return None


def imports(path: pathlib.Path):
    """(line, module) of every snnfast module that `path` imports, relative imports resolved."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module[: -len(".__init__")]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("snnfast"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("snnfast"):
                continue
            if target == "snnfast":  # `from .. import nn, surrogate`: each name is a module
                yield from ((node.lineno, f"snnfast.{a.name}") for a in node.names)
            else:
                yield node.lineno, target


SOURCES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_the_layout_has_its_parts():
    assert {part(".".join(p.relative_to(ROOT).with_suffix("").parts)) for p in SOURCES} >= set(ALLOWED)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_one_way(path):
    source = part(".".join(path.relative_to(ROOT).with_suffix("").parts))
    if source is None:
        return
    wrong = [f"line {line}: {target}" for line, target in imports(path)
             if part(target) not in (None, source) and part(target) not in ALLOWED[source]]
    assert not wrong, (f"{path.relative_to(ROOT)} ({source}) may import only {sorted(ALLOWED[source])} "
                       f"from snnfast (README.md, Layout): {wrong}")


def test_readme_layout_paths_exist():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    paths = []
    for line in block.splitlines():
        first = line.split("  ", 1)[0].strip()
        if not first.startswith(("snnfast/", "csrc/")):
            continue
        # "snnfast/losses.py, models/": the names after the first are in the first one's folder.
        folder = first.rstrip("/").rsplit("/", 1)[0] + "/"
        for name in re.split(r",\s*", first):
            paths.append(name if name.startswith(("snnfast/", "csrc/")) else folder + name)
    assert len(paths) > 20
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"README.md's layout names paths that do not exist: {missing}"
