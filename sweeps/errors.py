"""The one error a user's config can cause."""


class ConfigError(ValueError):
    """An invalid sweep config, as one line: the key path at fault and what would be valid."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
