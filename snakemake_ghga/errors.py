"""The exception tree of snakemake_ghga; a leaf module that imports only the stdlib.

Every message names the object, what happened, the cause and the remedy; secrets
never appear in it.

    GhgaError                      base; .hint says what the user can do
    ├── ConfigError                bad settings or arguments, found before any I/O
    ├── InputFileError             an input file that cannot be used as given
    ├── LocalFileError             a local write failed (disk full, permissions)
    ├── InUseError                 another run is transferring the same file now
    ├── CryptError
    │   ├── KeyLoadError           missing/unreadable/malformed key, wrong passphrase
    │   └── DecryptionError        no header packet for this key; MAC failure
    ├── ApiError                   .status, .exception_id
    │   ├── AuthError              401/403 on the JSON API
    │   ├── NotFoundError          404 on the JSON API
    │   └── UnfinishedUploadError  another client's unfinished upload holds the alias
    ├── Cancelled                  stopped early (Ctrl-C, or another part failed)
    └── TransferError              a part transfer that could not be completed
        ├── PartFailedError        retries exhausted; __cause__ is the last error
        └── IntegrityError         size or checksum mismatch (expected vs actual)
"""

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "ApiError",
    "AuthError",
    "Cancelled",
    "ConfigError",
    "CryptError",
    "DecryptionError",
    "GhgaError",
    "InUseError",
    "InputFileError",
    "IntegrityError",
    "KeyLoadError",
    "LocalFileError",
    "NotFoundError",
    "PartFailedError",
    "TransferError",
    "UnfinishedUploadError",
]


class GhgaError(Exception):
    """Base of every error this package raises on purpose."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}. {self.hint}"
        return self.message


class ConfigError(GhgaError):
    """A setting or argument is invalid; raised before any network I/O."""


class InputFileError(GhgaError):
    """An input file cannot be used: missing, a directory, empty, already encrypted."""


class LocalFileError(GhgaError):
    """A local file could not be written (disk full, permissions, I/O error)."""


def local_write_error(path: object, err: OSError) -> LocalFileError:
    """Describe a failed local write with the cause and what to do."""
    reason = err.strerror or str(err)
    return LocalFileError(
        f"writing {path} failed: {reason}",
        "Free space there or choose another output or temp directory",
    )


@contextmanager
def writing(path: object) -> Iterator[None]:
    """Raise an ``OSError`` in the block as ``local_write_error(path, ...)``."""
    try:
        yield
    except OSError as err:
        raise local_write_error(path, err) from err


class InUseError(GhgaError):
    """Another run is uploading the same file or writing the same output now."""


class CryptError(GhgaError):
    """A Crypt4GH key or ciphertext problem."""


class KeyLoadError(CryptError):
    """A key file could not be loaded (missing, unreadable, malformed, passphrase)."""


class DecryptionError(CryptError):
    """Ciphertext could not be decrypted (wrong key, MAC failure, truncation)."""


class ApiError(GhgaError):
    """A GHGA service answered with an error."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        status: int | None = None,
        exception_id: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.exception_id = exception_id


class AuthError(ApiError):
    """The service refused the credentials (401/403)."""


class NotFoundError(ApiError):
    """The service does not know the requested object (404)."""


class UnfinishedUploadError(ApiError):
    """The box holds an unfinished upload of the alias that is not ours to replace."""


class Cancelled(GhgaError):
    """Work stopped early: the run was stopped (Ctrl-C) or another part failed."""


class TransferError(GhgaError):
    """A part transfer could not be completed."""


class PartFailedError(TransferError):
    """A part failed after all retry attempts; __cause__ holds the last error."""


class IntegrityError(TransferError):
    """A size or checksum did not match what was expected."""
