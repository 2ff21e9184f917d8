"""Result lines printed while progress bars are on the same terminal."""

import io

from snakemake_ghga.progress import BarProgress


def test_result_line_goes_above_the_bars_not_under_a_redraw() -> None:
    terminal = io.StringIO()  # stdout and stderr on one terminal
    bars = BarProgress(terminal, width=4)
    bars.file_started("slow.bin", 100)
    before = terminal.getvalue()

    bars.write_line("uploaded fast.bin as fast.bin", terminal)

    after = terminal.getvalue()[len(before) :]
    cleared, rest = after.split("\x1b[J", 1)
    assert cleared == "\x1b[1F"  # the one bar line is erased first
    line, redrawn = rest.split("\n", 1)
    assert line == "uploaded fast.bin as fast.bin"
    assert redrawn.startswith("slow.bin") and redrawn.count("\n") == 1
