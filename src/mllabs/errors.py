"""The one exception type that reaches the user as a single line and exit status 2."""


class UserError(Exception):
    """Bad input or a wrong option: the message names the cause and what to do.

    The CLI prints it as one line (no traceback unless --debug) and exits with 2.
    """


class DataError(UserError):
    """A data file is missing, unreadable or fails its checksum."""


class WriteError(UserError, OSError):
    """A file could not be written because of where it goes (a full disk, a quota, a read-only
    or unwritable folder), not because of a bug. Also an OSError, so code that already treats a
    failed write as a warning (a cache, the run database) goes on doing so."""

    def __init__(self, message: str, errno: int, filename: str):
        super().__init__(errno, message, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message
