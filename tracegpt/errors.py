"""The errors a user can cause. The CLI turns each into one line on standard error."""


class TraceGPTError(Exception):
    """An expected failure at run time (a file that cannot be read, a model that does not fit): exit 1."""

    exit_code = 1


class UsageError(TraceGPTError):
    """A value the user gave that is out of range or malformed: exit 2, like a bad option."""

    exit_code = 2
