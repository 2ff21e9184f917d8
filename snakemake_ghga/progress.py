"""Progress reporting: the listener protocol and two text renderers.

Top level: stdlib only. The library calls a ``ProgressListener``; only the CLI
chooses a renderer and the stream it writes to (a bar per file that moves
with bytes on a TTY, plain log lines otherwise).
"""

import threading
import time
from dataclasses import dataclass
from typing import Protocol, TextIO

__all__ = [
    "BarProgress",
    "LineProgress",
    "NullProgress",
    "ProgressListener",
]


class ProgressListener(Protocol):
    """Receives per-file progress; called from worker threads."""

    def file_started(self, name: str, total_bytes: int) -> None:
        """A file's transfer began (``total_bytes`` on the wire)."""

    def file_progress(self, name: str, delta_bytes: int) -> None:
        """Bytes moved (negative when a failed attempt is taken back)."""

    def file_notice(self, name: str, message: str) -> None:
        """Something the user should know, e.g. a discarded journal."""

    def file_finished(self, name: str, ok: bool, message: str) -> None:
        """A file ended; ``message`` is its one-line result."""


class NullProgress:
    """Ignores everything."""

    def file_started(self, name: str, total_bytes: int) -> None:
        """Ignore."""

    def file_progress(self, name: str, delta_bytes: int) -> None:
        """Ignore."""

    def file_notice(self, name: str, message: str) -> None:
        """Ignore."""

    def file_finished(self, name: str, ok: bool, message: str) -> None:
        """Ignore."""


class LineProgress:
    """One line per start, notice and end (for logs and pipes)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def file_started(self, name: str, total_bytes: int) -> None:
        """Print a start line."""
        self._line(f"{name}: started ({total_bytes} bytes)")

    def file_progress(self, name: str, delta_bytes: int) -> None:
        """Ignore byte counts (no bar in a log)."""

    def file_notice(self, name: str, message: str) -> None:
        """Print the notice."""
        self._line(f"{name}: {message}")

    def file_finished(self, name: str, ok: bool, message: str) -> None:
        """Ignore: the CLI prints the result line itself."""


@dataclass
class _Bar:
    total: int
    done: int = 0
    started: float = 0.0


class BarProgress:
    """A bar per file in flight, redrawn at most 10 times a second."""

    def __init__(
        self, stream: TextIO, width: int = 30, min_interval_s: float = 0.1
    ) -> None:
        self._stream = stream
        self._width = width
        self._min_interval_s = min_interval_s
        self._bars: dict[str, _Bar] = {}
        self._lock = threading.Lock()
        self._drawn_lines = 0
        self._last_draw = 0.0

    def file_started(self, name: str, total_bytes: int) -> None:
        """Add a bar."""
        with self._lock:
            self._bars[name] = _Bar(max(1, total_bytes), 0, time.monotonic())
            self._draw(force=True)

    def file_progress(self, name: str, delta_bytes: int) -> None:
        """Move the bar."""
        with self._lock:
            bar = self._bars.get(name)
            if bar is not None:
                bar.done = max(0, min(bar.total, bar.done + delta_bytes))
                self._draw(force=False)

    def file_notice(self, name: str, message: str) -> None:
        """Print the notice above the bars."""
        with self._lock:
            self._clear()
            self._stream.write(f"{name}: {message}\n")
            self._draw(force=True)

    def file_finished(self, name: str, ok: bool, message: str) -> None:
        """Remove the bar (the CLI prints the result line)."""
        with self._lock:
            self._bars.pop(name, None)
            self._clear()
            self._draw(force=True)

    def write_line(self, text: str, stream: TextIO) -> None:
        """Print ``text`` on ``stream`` (e.g. stdout on the same terminal) above
        the bars, so a redraw does not overwrite it."""
        with self._lock:
            self._clear()
            self._stream.flush()
            stream.write(text + "\n")
            stream.flush()
            self._draw(force=True)

    def _clear(self) -> None:
        if self._drawn_lines:
            self._stream.write(f"\x1b[{self._drawn_lines}F\x1b[J")
            self._drawn_lines = 0

    def _draw(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < self._min_interval_s:
            return
        self._last_draw = now
        self._clear()
        for name, bar in self._bars.items():
            filled = self._width * bar.done // bar.total
            rate = bar.done / max(1e-3, now - bar.started) / 1e6
            self._stream.write(
                f"{name[-40:]:40} [{'#' * filled}{'.' * (self._width - filled)}] "
                f"{100 * bar.done // bar.total:3d}% {rate:7.1f} MB/s\n"
            )
        self._drawn_lines = len(self._bars)
        self._stream.flush()
