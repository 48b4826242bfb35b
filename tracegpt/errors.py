"""The errors a user can cause. The CLI turns each into one line on standard error."""


class TraceGPTError(Exception):
    """An expected failure at run time (a file that cannot be read, a model that does not fit): exit 1."""

    exit_code = 1


class UsageError(TraceGPTError):
    """A value the user gave that is out of range or malformed: exit 2, like a bad option."""

    exit_code = 2


class Interrupted(TraceGPTError):
    """Ctrl-C: exit 130, with what it left undone (`interrupted; FILE not saved`)."""

    exit_code = 130


class ParameterError(UsageError):
    """A value out of range, worded with the Python parameter's name: `temperature -1 is out of range; ...`.

    The domain knows parameters, not flags. The command line words the same error with the
    option the user typed (`--temperature -1 is out of range; ...`), through `said_as`.
    """

    def __init__(self, parameter: str, rest: str):
        self.parameter = parameter
        self.rest = rest  # what follows the name: the value as given and what is wrong with it
        super().__init__(f"{parameter} {rest}")

    def said_as(self, name: str) -> str:
        return f"{name} {self.rest}"

    @property
    def flag(self) -> str:
        """The command-line option of the same name: max_new_tokens -> --max-new-tokens."""
        return "--" + self.parameter.replace("_", "-")
