"""Errors that mean "the user's input is wrong": the CLIs print them as one line and exit 2."""


class UserError(Exception):
    """Bad input (config, file, dataset, checkpoint). The message names what and what is allowed."""


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass
