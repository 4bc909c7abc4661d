"""The package's own exception for failures of the machine rather than of the input.

A user error (bad option, bad data, a path that names the wrong thing) is a ``ValueError``
or ``TypeError`` naming the parameter and what is allowed; the command line prints it on one
line and exits with status 2. An :class:`EnvironmentFailure` is raised when the input was
fine but the environment stopped the work: a read-only or full disk, a lost scheduler, a
corrupt checkpoint, a missing optional dependency. The command line prints it on one line
and exits with status 1 (see :mod:`kernelapprox.cli`).
"""

from __future__ import annotations


class EnvironmentFailure(RuntimeError):
    """The environment, not the input, stopped the work.

    The message says what was kept and how to continue (e.g. "results written so far are
    kept; free some space and rerun with --resume"); the CLI prints it on one line and exits
    with status 1.
    """
