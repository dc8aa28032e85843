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


class ResumeDivergedError(StoreError):
    """A resumed generation batch rebuilt different candidates than the journal recorded."""


class ExecutorError(MunetError):
    """Workers could not finish a job (e.g. they kept dying); the system on disk is intact."""


class ImageError(MunetError):
    """An input is not a usable image: unreadable, wrong type, shape, dtype or value range."""


class ImageTooLargeError(ImageError):
    """An image decodes to more pixels than allowed."""


class ExportError(MunetError):
    """An export cannot be written or read back (bad format, missing file, failed check)."""


class ReportError(MunetError):
    """A report could not be written (e.g. an output folder that is read-only or full)."""
