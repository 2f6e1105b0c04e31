"""One kind of error for what the user got wrong, and how a stage reports it."""
import sys
import time


class UserError(Exception):
    """Bad params, bad data or a missing file: reported in one line, no traceback."""


def run_stage(main):
    """Run a stage's main() and print the one-line summary it returns with the time taken;
    a UserError ends the process with its one-line message instead."""
    start = time.perf_counter()
    try:
        summary = main()
    except UserError as error:
        sys.exit(f"error: {error}")
    print(f"{summary} [{time.perf_counter() - start:.1f} s]", flush=True)


def interactive():
    """Progress bars only for a person at a terminal, not in CI logs or DVC's captured output."""
    return sys.stderr.isatty()
