"""The errors a user can cause: the command line prints these as one line, and nothing else."""


class UserError(ValueError):
    """Bad input: a parameter, a file, a plug-in, a subset, or an argument of a public function.
    The message names the culprit.

    A ``ValueError`` so that library callers can catch it the usual way. It is raised where the
    input is read or checked; the command line turns only this family into one-line messages
    (``ame.cli.main``), so a bug, whatever its type, still shows its traceback.
    """
