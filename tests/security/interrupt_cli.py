"""Run `ghga-transfer`, held in one state until it is interrupted (Ctrl-C tests).

Usage: python interrupt_cli.py STATE MARKER ARGS... — touches MARKER once the
run is in STATE, then stays there as a slow or refusing network would:

- ``retry``: every part request is answered as by a 503 with ``Retry-After:
  600`` (the client then waits, capped by ``backoff_max_s``);
- ``put``: a slow uplink, 0.25 s per 1 MiB block of a part's body;
- ``get``: a slow downlink, 0.25 s per 1 MiB block read;
- ``encrypt``: a slow CPU, 0.1 s per 1 MiB block encrypted;
- ``none``: no change (the test watches the server for the state).
"""

import sys
import time
from pathlib import Path
from typing import Any

from snakemake_ghga.cli import main
from snakemake_ghga.crypt4gh import format as c4gh
from snakemake_ghga.transfer import engine as transfer


def _marking(marker: Path, original: Any, delay_s: float) -> Any:
    def slowed(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        marker.touch()
        time.sleep(delay_s)
        return result

    return slowed


def _refused(marker: Path) -> Any:
    def put_or_get(*_args: Any, **_kwargs: Any) -> None:
        marker.touch()
        raise transfer._Retryable("HTTP 503 on the part", retry_after_s=600.0)

    return put_or_get


if __name__ == "__main__":
    state, mark = sys.argv[1], Path(sys.argv[2])
    engine = transfer.TransferEngine
    if state == "retry":
        engine._put = _refused(mark)  # type: ignore[method-assign]
        engine._get = _refused(mark)  # type: ignore[method-assign]
    elif state == "put":
        reader = transfer._RangeReader
        reader.read = _marking(mark, reader.read, 0.25)  # type: ignore[method-assign]
    elif state == "get":
        transfer._read_fully = _marking(mark, transfer._read_fully, 0.25)
    elif state == "encrypt":
        cipher = c4gh.SegmentCipher
        cipher.encrypt_into = _marking(mark, cipher.encrypt_into, 0.1)  # type: ignore[method-assign]
    sys.exit(main(sys.argv[3:]))
