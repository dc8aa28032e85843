"""One exception type per kind of user mistake. The CLI prints ``str(err)`` in one line."""


class MunetError(Exception):
    """Base class: a problem the user can fix; the message names the bad value and the fix."""


class ConfigError(MunetError):
    """A configuration key or value is unknown or out of range."""


class TaskError(MunetError):
    """A task spec is unknown, or its data is missing or malformed."""


class RootError(MunetError):
    """A root model spec is unknown, unsupported, or its weights are missing."""


class StoreError(MunetError):
    """The system directory is missing, locked, corrupt or inconsistent with the config."""


class TrainingError(MunetError):
    """Training could not proceed (e.g. every candidate diverged)."""
