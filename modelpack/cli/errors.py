"""How subcommands report bad input: raise :class:`CliError`; main prints it without a traceback."""

from __future__ import annotations


class CliError(Exception):
    """A problem the user can fix; ``exit_code`` 2 for bad input, 1 for a failed run."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
