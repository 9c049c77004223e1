"""The `snnfast` command: `snnfast bench|study|train [...]`."""
from __future__ import annotations

import sys

COMMANDS = {
    "bench": ("snnfast.utils.benchmark", "time the fused op against the reference loop and the peers"),
    "study": ("snnfast.train.study", "the papers' studies (snnfast study xor|imp-patterns|losses|dalif-ablation|leakage|firing|generalization [--quick])"),
    "train": ("snnfast.train.cli", "train a setup of Tables 4 and 5 (snnfast train SETUP [flags])"),
}
USAGE = "usage: snnfast [-h] [--version] COMMAND [ARGS]"


def _help() -> str:
    lines = [USAGE, "", "commands:"]
    lines += [f"  {name:8s} {about}" for name, (_, about) in COMMANDS.items()]
    lines += ["", "`snnfast COMMAND --help` describes a command's arguments."]
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    first = argv[0] if argv else None
    if first in ("-h", "--help"):
        print(_help())
        raise SystemExit(0)
    if first in ("-V", "--version"):
        from . import __version__

        print(f"snnfast {__version__}")
        raise SystemExit(0)
    if first not in COMMANDS:
        # As argparse does: the usage and the error on stderr, exit status 2.
        problem = "a command is required" if first is None else f"unknown command {first!r}"
        print(f"{_help()}\nsnnfast: error: {problem} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        raise SystemExit(2)
    import importlib

    importlib.import_module(COMMANDS[first][0]).main(argv[1:])


if __name__ == "__main__":
    main()
