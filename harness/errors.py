"""Errors a user can cause. The CLI turns them into one line on stderr and exit status 2."""


class UsageError(Exception):
    """Bad input or usage: the message names the input and what to do. Exit status 2."""


class CheckFailed(Exception):
    """A check failed (a regression, a refuted claim, a failed gate). Exit status 1."""
