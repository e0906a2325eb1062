"""The one exception type users see.

Anything raised as ``LstmLabError`` is a problem with the user's input (a file, a column, a parameter): the
CLI prints its message as a single line and exits non-zero, without a traceback. Everything else is a bug and
keeps its traceback.
"""


class LstmLabError(ValueError):
    """Bad input: the message names the file, field or value and what was expected."""


def one_line(exc: BaseException) -> str:
    """The message as the single line the command-line tools print after ``Error:``."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__
