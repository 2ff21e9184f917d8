"""`python -m snakemake_ghga.sandbox …`: the sandbox commands without the main CLI.

Imports argparse and the sandbox's `cli`; equivalent to `ghga-transfer sandbox …`.
"""

import argparse
import sys

from snakemake_ghga.errors import ConfigError, GhgaError

from .cli import register


def main(argv: list[str] | None = None) -> int:
    """Parse `sandbox …` arguments, run the handler, map errors to exit codes."""
    parser = argparse.ArgumentParser(prog="python -m snakemake_ghga.sandbox")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sandbox", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.handler(args))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except GhgaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
