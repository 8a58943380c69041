"""The one exception type users see: every message says what is wrong and what to do."""


class NeurocorrError(Exception):
    """A problem the user can fix (bad input, missing plugin, wrong configuration)."""


class PluginError(NeurocorrError):
    """A plugin is broken or two plugins clash (a misspelt hook, a duplicate name)."""
