"""The argument groups of `vit-ft pretrain`: the unlabelled data and the masked-autoencoding method. Each checks its
own fields on creation, before any data is read."""

from dataclasses import dataclass, field


@dataclass
class PretrainingDataArguments:
    """
    Unlabelled images: a folder, a Hub dataset's image column, or a built-in data set's training images with their
    labels dropped.
    """

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A Hub dataset id (its image column only is read), or a built-in data set, its training "
            "split with the labels dropped (offline): `digits` (scikit-learn's 8x8 digits) or "
            "`lfw_faces` (scikit-image's 25x25 faces and non-faces)."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of images to pretrain on: flat, or nested (sub-folders are read, their names ignored)."
        },
    )
    train_shards: str | None = field(
        default=None,
        metadata={
            "help": "Webdataset (.tar) or parquet shards to stream the images from (their labels are not read), "
            "e.g. data/train-{000000..000099}.tar: for image sets larger than the disk. Needs validation_shards."
        },
    )
    validation_shards: str | None = field(
        default=None, metadata={"help": "With train_shards: the held-out images' shards (read whole)."}
    )
    train_examples: int | None = field(
        default=None,
        metadata={"help": "With train_shards: the images they hold (an epoch), unless shards.json or max_steps says."},
    )
    shuffle_shards: int = field(
        default=4, metadata={"help": "With train_shards: how many shards each reader shuffles together in memory."}
    )
    image_column_name: str | None = field(
        default=None, metadata={"help": "Column holding the images; detected among image, img, pixel_values, ..."}
    )
    validation_share: float = field(
        default=0.05,
        metadata={
            "help": "Share of the images held out for the evaluation loss and reconstructions.png (at least "
            "one image)."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only this many images (a random subset), before the held-out share."}
    )
    strict_images: bool = field(
        default=False,
        metadata={
            "help": "Make an image that cannot be decoded fatal. By default it is left out of its batch, named "
            "in a warning and counted."
        },
    )

    def __post_init__(self):
        if sum(map(bool, (self.dataset_name, self.train_dir, self.train_shards))) != 1:
            raise ValueError(
                "Set one of dataset_name (a Hub id, `digits` or `lfw_faces`), train_dir (a folder of images) and "
                "train_shards (shards to stream) to pretrain on."
            )
        if bool(self.train_shards) != bool(self.validation_shards):
            raise ValueError(
                "train_shards and validation_shards go together: a stream has no share to hold out, so the "
                "held-out images come from their own shards (vit-ft shard --train_val_split writes them)."
            )
        if self.shuffle_shards < 1:
            raise ValueError(f"shuffle_shards={self.shuffle_shards} must be at least 1.")
        if not 0 < self.validation_share < 1:
            raise ValueError(f"validation_share={self.validation_share} must be above 0 and below 1, e.g. 0.05.")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError(
                f"max_train_samples={self.max_train_samples} must be at least 1, or unset to keep every image."
            )


@dataclass
class MaskedAutoencodingArguments:
    """
    Masked autoencoding (He et al. 2022). Defaults are MAE's: 75% of patches masked, a 512-wide decoder of 8 blocks
    with 16 heads and MLP 2048, normalised-pixel targets. They become the model's config fields of the same names.
    """

    mask_ratio: float = field(default=0.75, metadata={"help": "Share of patches hidden from the encoder (MAE: 0.75)."})
    decoder_hidden_size: int = field(
        default=512, metadata={"help": "Decoder width; at most the encoder's hidden_size (MAE: 512 for ViT-B)."}
    )
    decoder_num_hidden_layers: int = field(default=8, metadata={"help": "Decoder blocks (MAE: 8)."})
    decoder_num_attention_heads: int = field(default=16, metadata={"help": "Decoder attention heads (MAE: 16)."})
    decoder_intermediate_size: int = field(default=2048, metadata={"help": "Decoder MLP width (MAE: 2048)."})
    norm_pix_loss: bool = field(
        default=True,
        metadata={"help": "Reconstruct each patch's pixels normalised by its own mean and variance (MAE's default)."},
    )
    random_resized_crop_min_scale: float = field(
        default=0.2, metadata={"help": "Smallest share of the image area RandomResizedCrop keeps (MAE: 0.2)."}
    )
    horizontal_flip: bool = field(
        default=True, metadata={"help": "Random horizontal flips (MAE: on; off for digits)."}
    )
    num_reconstructions: int = field(
        default=8, metadata={"help": "Held-out images drawn in reconstructions.png (original, masked, rebuilt)."}
    )

    def __post_init__(self):
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"mask_ratio={self.mask_ratio} must be between 0 and 1 (exclusive); MAE uses 0.75.")
        if not 0 < self.random_resized_crop_min_scale <= 1:
            raise ValueError(f"random_resized_crop_min_scale={self.random_resized_crop_min_scale} must be in (0, 1].")
        if self.num_reconstructions < 0:
            raise ValueError(f"num_reconstructions={self.num_reconstructions} must be 0 (no figure) or more.")

    @property
    def config_fields(self) -> dict:
        """The model config fields these arguments set."""
        names = (
            "mask_ratio",
            "decoder_hidden_size",
            "decoder_num_hidden_layers",
            "decoder_num_attention_heads",
            "decoder_intermediate_size",
            "norm_pix_loss",
        )
        return {name: getattr(self, name) for name in names}
