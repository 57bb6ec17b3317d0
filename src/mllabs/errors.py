"""The one exception type that reaches the user as a single line and exit status 2."""


class UserError(Exception):
    """Bad input or a wrong option: the message names the cause and what to do.

    The CLI prints it as one line (no traceback unless --debug) and exits with 2.
    """


class DataError(UserError):
    """A data file is missing, unreadable or fails its checksum."""
