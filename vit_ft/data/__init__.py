"""Datasets, image decoding, augmentation and corruptions."""


class MissingExtraError(ImportError):
    """
    A package of one of vit-ft's optional extras (pyproject.toml) is not installed; the message gives the command
    that installs it. It sits in the lowest layer that has an extra: `vit_ft.export` raises it too.
    """
