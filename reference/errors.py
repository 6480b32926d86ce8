"""Errors caused by the user's input (a missing file, a corrupt checkpoint, a mismatched tokenizer).
The harness CLI prints their message on one line and exits 2; they are never tracebacks."""


class InputError(ValueError):
    """Bad input: the message names the input and what to do about it."""
