"""Datasets, image decoding, augmentation and corruptions."""
