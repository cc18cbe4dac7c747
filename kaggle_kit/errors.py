"""The one error type users see: the CLI prints it as one line and exits non-zero."""


class KitError(Exception):
    """A failure caused by input, environment or Kaggle, never by a bug.

    The message is one line that names the file, field or id at fault and says how to fix it.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
