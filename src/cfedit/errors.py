"""Errors a user can act on. The CLI prints their message and exits with status 2, no traceback."""


class CfeditError(Exception):
    """Base class: bad input from a user (graph text, names, values, files)."""


class GraphError(CfeditError, ValueError):
    """A causal diagram that is malformed (cycle, self loop, unknown name, bad line)."""


class DomainError(CfeditError, ValueError):
    """An unknown factor name or a value outside a factor's domain."""


class QueryError(CfeditError, ValueError):
    """A counterfactual query that cannot be parsed or evaluated (e.g. evidence of probability zero)."""


class DataError(CfeditError, ValueError):
    """A missing, corrupt or foreign data file (MNIST folder, labels CSV, images)."""


class CheckpointError(CfeditError, ValueError):
    """A checkpoint that is missing, corrupt, or was written for something else."""


class StorageError(CfeditError, OSError):
    """A file the system would not read or write for a reason outside cfedit: a read-only folder, a full disk,
    a missing permission. An ``OSError`` too (with the system's ``errno``), so code that catches those keeps working."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno
