"""The modules that moved in issue 13's package layout, importable under their old names.

No alias file stands at an old path: a file there would stop git from following the move
when another branch's edit of the old file is merged. Instead this finder answers for the old
names with the module itself (`snnfast.lowmem is snnfast.longseq.bptt`), so every old import,
attribute access, pickle and `python -m snnfast.benchmark` keeps working.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# Old module name -> where the code now lives.
MOVED = {
    "snnfast.reference": "snnfast.ops.reference",
    "snnfast.recurrent": "snnfast.ops._recurrent_lif",
    "snnfast._args": "snnfast.ops._args",
    "snnfast._library": "snnfast.ops._library",
    "snnfast.lowmem": "snnfast.longseq.bptt",
    "snnfast._segments": "snnfast.longseq._segments",
    "snnfast.bitpack": "snnfast.longseq.bitpack",
    "snnfast.linear_lif": "snnfast.nn.linear",
    "snnfast.benchmark": "snnfast.utils.benchmark",
    "snnfast.benchmark_imp": "snnfast.utils.benchmark_imp",
    "snnfast.memory": "snnfast.utils.memory",
    "snnfast.train.hooks": "snnfast.train.builders",
}


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        # The old name is bound to the new module object, not to a copy of it.
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        pass  # create_module returned the module fully imported

    def get_code(self, fullname):
        # `python -m OLD` runs the new module as __main__, under its own package.
        return compile(f"import runpy\nrunpy.run_module({MOVED[fullname]!r}, run_name='__main__', alter_sys=True)\n",
                       f"<{fullname}, moved to {MOVED[fullname]}>", "exec")


def install() -> None:
    if not any(isinstance(finder, _OldNames) for finder in sys.meta_path):
        sys.meta_path.append(_OldNames())


def old_attribute(name: str):
    """snnfast.<old module name> without an import statement (module __getattr__)."""
    full = f"snnfast.{name}"
    if full not in MOVED:
        raise AttributeError(f"module 'snnfast' has no attribute {name!r}")
    return importlib.import_module(full)
