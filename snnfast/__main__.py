"""The `snnfast` command: `snnfast bench|study|train [...]`."""
from __future__ import annotations

import sys

COMMANDS = {
    "bench": ("snnfast.benchmark", "time the fused op against the reference loop and the peers"),
    "study": ("snnfast.train.study", "the papers' studies (snnfast study xor|imp-patterns|losses|dalif-ablation [--quick])"),
    "train": ("snnfast.train.cli", "train a setup of Tables 4 and 5 (snnfast train SETUP [flags])"),
}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: snnfast COMMAND [ARGS]\n\ncommands:")
        for name, (_, about) in COMMANDS.items():
            print(f"  {name:8s} {about}")
        raise SystemExit(0 if argv[:1] in ([], ["-h"], ["--help"]) else 2)
    import importlib

    importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    main()
