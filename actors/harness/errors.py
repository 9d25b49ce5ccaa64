"""The one exception type of the harness, so callers can tell setup failures from test failures."""


class HarnessError(RuntimeError):
    """A local server could not be installed, started, provisioned or stopped."""
