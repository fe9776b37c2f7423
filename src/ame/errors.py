"""The errors a user can cause: the command line prints these as one line, and nothing else."""


class UserError(ValueError):
    """Bad input: a parameter, a file, a plug-in, a subset. The message names the culprit.

    A ``ValueError`` so that library callers can catch it the usual way; the command line turns
    only this family (and missing or unreadable files) into one-line messages, so a bug still
    shows its traceback.
    """
