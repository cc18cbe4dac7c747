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


# What torch's allocators say when memory runs out: CUDA raises torch.OutOfMemoryError, the CPU allocator a
# RuntimeError with this text, Apple's MPS a RuntimeError with the last.
_OUT_OF_MEMORY_TEXTS = ("DefaultCPUAllocator: can't allocate memory", "CUDA out of memory", "MPS backend out of memory")


def out_of_memory(error: BaseException) -> str | None:
    """For an allocator's out-of-memory error: what it tried to allocate, in a few words; otherwise None."""
    import re

    text = str(error)
    if type(error).__name__ != "OutOfMemoryError" and not any(t in text for t in _OUT_OF_MEMORY_TEXTS):
        return None
    tried = re.search(r"(?:tried to allocate|Tried to allocate)\s+([\d.]+)\s*(bytes|[KMG]iB)?", text)
    if not tried:
        return "out of memory"
    amount, unit = float(tried.group(1)), tried.group(2) or "bytes"
    if unit == "bytes":
        amount, unit = amount / 2**30, "GiB"
    return f"out of memory (an allocation of {amount:.2f} {unit} failed)"
