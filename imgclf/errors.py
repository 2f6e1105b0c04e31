"""One kind of error for what the user got wrong, and how a stage reports it."""
import sys


class UserError(Exception):
    """Bad params, bad data or a missing file: reported in one line, no traceback."""


def run_stage(main):
    """Run a stage's main(); a UserError ends the process with its one-line message."""
    try:
        main()
    except UserError as error:
        sys.exit(f"error: {error}")
