"""Signal dispositions for the children a test signals.

A child inherits ignored signals: a suite started from a background job
(``nohup pytest … &``, or a non-interactive shell's ``cmd &``) runs with
SIGINT ignored, so a child sent SIGINT would carry on and exit 0. A test that
signals a child therefore starts it with ``preexec_fn=default_signals``.
"""

import signal

__all__ = ["default_signals"]


def default_signals() -> None:
    """Run in the child before exec: SIGINT and SIGTERM back to their defaults."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
