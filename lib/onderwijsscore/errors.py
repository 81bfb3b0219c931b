"""Errors the pipeline raises on purpose. Their messages are built from names, rules and
counts only, so they may be logged and recorded; any other exception is recorded by
type alone, since engine messages can quote row values."""


class PipelineError(ValueError):
    """A run that must stop: bad input, an undeterminable rule, a failed gate."""


class ConfigFileError(PipelineError):
    """A configuration file that breaks its format or a range; the message names file and key."""

    def __init__(self, file: str, key: str, problem: str):
        super().__init__(f"{file}: {key}: {problem}")


def describe(error: BaseException) -> str:
    if isinstance(error, PipelineError):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__} (message withheld: engine errors may quote row values; see the driver log)"
