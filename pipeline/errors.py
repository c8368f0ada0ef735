"""User-facing errors: reported as one line by the CLI, without a traceback."""
from pipeline.config import ConfigError


class InputError(RuntimeError):
    """Bad input (missing file, corrupt shard, unusable corpus) named in the message."""


__all__ = ["ConfigError", "InputError"]
