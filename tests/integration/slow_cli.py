"""Run `ghga-transfer` with every part slowed down (for kill -9 resume tests).

Usage: python slow_cli.py DELAY_S ARGS... — each part PUT/GET sleeps DELAY_S
first, as a slow network would, so a test can kill the process mid-transfer.
"""

import sys
import time
from typing import Any

from snakemake_ghga.cli import main
from snakemake_ghga.transfer import engine as transfer


def _slowed(original: Any, delay_s: float) -> Any:
    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(delay_s)
        return original(*args, **kwargs)

    return slow


if __name__ == "__main__":
    delay = float(sys.argv[1])
    engine = transfer.TransferEngine
    engine._put = _slowed(engine._put, delay)  # type: ignore[method-assign]
    engine._get = _slowed(engine._get, delay)  # type: ignore[method-assign]
    sys.exit(main(sys.argv[2:]))
