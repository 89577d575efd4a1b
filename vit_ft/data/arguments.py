"""The data of a run and its augmentations. Each group checks its own fields on creation, before any data is read."""

from dataclasses import dataclass, field

AUTO_AUGMENTS = ("randaugment", "trivialaugment")
# The corruptions `image_corruptions` may name, and their severities (vit_ft.data.corruptions applies them).
CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "jpeg", "low_resolution")
SEVERITIES = (1, 2, 3, 4, 5)


def check_corruption(name: str, severity: int) -> None:
    """Raises a ValueError naming the problem unless `name` is one of `CORRUPTIONS` and `severity` one of 1..5."""
    if name not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption {name!r}: choose among {', '.join(CORRUPTIONS)}.")
    if severity not in SEVERITIES:
        raise ValueError(f"severity={severity!r} is out of range: use an integer from 1 (mild) to 5 (strong).")


def corruption_list(names: str | list[str] | None, severity: int) -> list[str]:
    """
    The corruptions `names` gives (comma-separated text or a list; None: none), in order, each checked at `severity`.
    """
    if isinstance(names, str):
        names = names.split(",")
    corruptions = [name.strip() for name in names or [] if name.strip()]
    for name in corruptions:
        check_corruption(name, severity)
    return corruptions


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A Hub dataset id (e.g. uoft-cs/cifar10), or a built-in data set (offline): `digits` "
            "(scikit-learn's 8x8 digits) or `lfw_faces` (scikit-image's 25x25 faces and non-faces; "
            "needs scikit-image)."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_dir: str | None = field(default=None, metadata={"help": "Image folder (one folder per class) to train on."})
    validation_dir: str | None = field(default=None, metadata={"help": "Image folder to evaluate on."})
    test_dir: str | None = field(default=None, metadata={"help": "Image folder to test on."})
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream the train split of dataset_name (a Hub dataset) instead of downloading it: for data "
            "larger than the disk. Needs train_examples or max_steps."
        },
    )
    train_shards: str | None = field(
        default=None,
        metadata={
            "help": "Webdataset (.tar) or parquet shards to stream the train split from: a path or URL (hf://, s3://, "
            "gs://) with brace ranges, e.g. data/train-{000000..000099}.tar. `vit-ft shard` writes them."
        },
    )
    validation_shards: str | None = field(
        default=None, metadata={"help": "Shards of the validation split (read whole into the datasets cache)."}
    )
    test_shards: str | None = field(
        default=None, metadata={"help": "Shards of the test split (read whole into the datasets cache)."}
    )
    train_examples: int | None = field(
        default=None,
        metadata={
            "help": "How many examples a streamed train split holds: an epoch's length. Not needed with max_steps, "
            "or where the shards' shards.json (vit-ft shard) or the Hub dataset's card says it."
        },
    )
    shuffle_shards: int = field(
        default=4,
        metadata={
            "help": "How many shards a streamed train split shuffles together: each reader holds that many shards "
            "in memory (undecoded) and draws their examples in a seeded order."
        },
    )
    image_column_name: str | None = field(
        default=None, metadata={"help": "Column holding the images; detected among image, img, pixel_values, ..."}
    )
    label_column_name: str | None = field(
        default=None, metadata={"help": "Column holding the labels; detected among label, labels, fine_label, ..."}
    )
    train_val_split: float = field(
        default=0.15, metadata={"help": "Share of train carved out for validation when there is no validation split."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training examples."})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep only this many validation and test examples."}
    )
    train_samples_per_class: int | None = field(
        default=None,
        metadata={
            "help": "Few-shot: train on K images of each class, drawn from the training pool after the "
            "validation split is carved, seeded by the run's seed (the same images in every run with "
            "that seed; a smaller K's images are among a larger K's). The run records them in "
            "train_subset.json."
        },
    )
    image_corruptions: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated corruptions (gaussian_noise, gaussian_blur, jpeg, low_resolution) applied "
            "in that order to every image of every split, before the transforms: a low-quality version "
            "of the data, the same in every run (noise seeded per image from corruption_seed)."
        },
    )
    corruption_severity: int = field(default=3, metadata={"help": "Severity 1..5 of image_corruptions."})
    corruption_seed: int = field(default=0, metadata={"help": "Seed of image_corruptions' noise."})
    strict_images: bool = field(
        default=False,
        metadata={
            "help": "Make an image that cannot be decoded fatal. By default it is left out of its batch, named "
            "in a warning and counted in the results (train_skipped_images, eval_skipped_images, "
            "test_skipped_images)."
        },
    )

    def __post_init__(self):
        if not (self.dataset_name or self.train_dir or self.validation_dir or self.test_dir or self.has_shards):
            raise ValueError(
                "No data: set dataset_name (a Hub id, `digits` or `lfw_faces`), train_dir/validation_dir/test_dir "
                "or train_shards/validation_shards/test_shards."
            )
        self._check_streaming()
        if not 0 <= self.train_val_split < 1:
            raise ValueError(f"train_val_split={self.train_val_split} must be at least 0 and below 1, e.g. 0.15.")
        for name in ("max_train_samples", "max_eval_samples", "train_samples_per_class"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1, or unset to keep every example.")
        if self.train_samples_per_class is not None and self.max_train_samples is not None:
            raise ValueError(
                f"train_samples_per_class={self.train_samples_per_class} and max_train_samples="
                f"{self.max_train_samples} both choose the training images: set only one of them."
            )
        try:
            corruption_list(self.image_corruptions, self.corruption_severity)
        except ValueError as error:
            raise ValueError(
                f"image_corruptions={self.image_corruptions!r}, corruption_severity="
                f"{self.corruption_severity}: {error}"
            ) from error

    def _check_streaming(self) -> None:
        sources = [name for name in ("dataset_name", "train_dir", "validation_dir", "test_dir") if getattr(self, name)]
        if self.has_shards and sources:
            raise ValueError(
                f"train_shards/validation_shards/test_shards and {', '.join(sources)} both name the data: set one."
            )
        if self.streaming and not self.dataset_name:
            raise ValueError("streaming: true streams a Hub dataset: set dataset_name (shards stream on their own).")
        if self.is_streamed:
            chosen = [name for name in ("max_train_samples", "train_samples_per_class") if getattr(self, name)]
            if chosen:
                raise ValueError(
                    f"{', '.join(chosen)} picks rows of a whole train split; a streamed one has no rows to pick "
                    "from: unset it, or load the data without streaming."
                )
        if self.shuffle_shards < 1:
            raise ValueError(f"shuffle_shards={self.shuffle_shards} must be at least 1.")
        if self.train_examples is not None and self.train_examples < 1:
            raise ValueError(f"train_examples={self.train_examples} must be at least 1, or unset.")

    @property
    def has_shards(self) -> bool:
        return bool(self.train_shards or self.validation_shards or self.test_shards)

    @property
    def is_streamed(self) -> bool:
        """Whether the train split streams (a streamed Hub dataset or train_shards) rather than being read whole."""
        return self.streaming or bool(self.train_shards)

    @property
    def has_training_data(self) -> bool:
        """Whether the data has a train split to train on (a Hub dataset or a built-in one is assumed to have one)."""
        return bool(self.dataset_name or self.train_dir or self.train_shards)

    @property
    def corruption(self) -> tuple[str | None, int, int]:
        """
        (`image_corruptions`, `corruption_severity`, `corruption_seed`): what `corrupted_transform` and
        `with_corruption` (vit_ft.data.corruptions) take after the transform, to corrupt every image of the data.
        """
        return self.image_corruptions, self.corruption_severity, self.corruption_seed


@dataclass
class AugmentationArguments:
    """The random augmentations of training images (torchvision transforms v2) and batches (MixUp/CutMix)."""

    auto_augment: str | None = field(
        default=None, metadata={"help": "`randaugment` or `trivialaugment` (TrivialAugmentWide); None for neither."}
    )
    random_resized_crop_min_scale: float = field(
        default=0.08, metadata={"help": "Smallest share of the image area RandomResizedCrop keeps (timm: 0.08)."}
    )
    horizontal_flip: bool = field(default=True, metadata={"help": "Random horizontal flips (off for digits)."})
    random_erasing: float = field(default=0.0, metadata={"help": "Probability of RandomErasing per image."})
    mixup_alpha: float = field(default=0.0, metadata={"help": "MixUp Beta(alpha, alpha); 0 turns it off."})
    cutmix_alpha: float = field(default=0.0, metadata={"help": "CutMix Beta(alpha, alpha); 0 turns it off."})

    def __post_init__(self):
        if self.auto_augment is not None and self.auto_augment not in AUTO_AUGMENTS:
            raise ValueError(
                f"auto_augment={self.auto_augment!r}: use {' or '.join(AUTO_AUGMENTS)}, or leave it unset."
            )
        if not 0 < self.random_resized_crop_min_scale <= 1:
            raise ValueError(f"random_resized_crop_min_scale={self.random_resized_crop_min_scale} must be in (0, 1].")
        if not 0 <= self.random_erasing <= 1:
            raise ValueError(f"random_erasing={self.random_erasing} is a probability: give a value from 0 to 1.")
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be 0 (off) or positive.")
