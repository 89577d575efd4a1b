"""`load_checkpoint`: any checkpoint vit_ft reads (vit_ft, transformers ViT/DeiT) into a vit_ft model class."""

from pathlib import Path

from transformers import PretrainedConfig
from transformers.utils import logging

from ..model.configuration_vit_ft import ViTConfig
from ..model.modeling_vit_ft import ViTPreTrainedModel, resample_position_embeddings
from ..output_dir import MODEL_WEIGHTS
from .key_conversion import (
    MAE_DECODER_PREFIX,
    TRANSFORMERS_MODEL_TYPES,
    config_from_transformers,
    convert_transformers_state_dict,
)
from .reading import HUB_KWARGS, naming_damaged_weights, read_json, read_weights
from .remote_code import check_remote_code

logger = logging.get_logger(__name__)

# The class that saves a `vit-ft pretrain` output (config.json's `architectures`), and the weights only it has.
MASKED_AUTOENCODER = "ViTForMaskedAutoencoding"
DECODER_PREFIX = "decoder."


def load_checkpoint(path_or_id: str | Path, model_class: type[ViTPreTrainedModel], **kwargs) -> ViTPreTrainedModel:
    """
    Loads a vit_ft checkpoint into `model_class` (`ViTForImageClassification` or `ViTModel`), or converts a
    transformers ViT/DeiT/ViTMAE checkpoint (`model_type` `vit`, `deit` or `vit_mae`, old or current key layout) on
    the way: the pooler, mask token and MAE decoder are dropped with a warning. Passing another `image_size` than
    the checkpoint's resizes the learned position embeddings permanently (bicubic). A checkpoint whose config asks
    for code other than vit_ft's is refused unless `trust_remote_code=True` (vit_ft's own classes load it even then).
    Other keyword arguments behave as in `from_pretrained`.

    ```python
    from vit_ft import ViTForImageClassification
    from vit_ft.checkpoints import load_checkpoint

    model = load_checkpoint("google/vit-base-patch16-224-in21k", ViTForImageClassification, num_labels=10,
                            ignore_mismatched_sizes=True)
    ```
    """
    path_or_id = str(path_or_id)
    hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
    source = read_json(path_or_id, "config.json", hub_kwargs)
    if source is None:
        raise OSError(f"{path_or_id} has no config.json: it is not a model checkpoint.")
    # Explicit, never None: transformers would then ask on stdin whether to run a folder's code.
    kwargs["trust_remote_code"] = bool(kwargs.get("trust_remote_code", False))
    check_remote_code(path_or_id, kwargs["trust_remote_code"], hub_kwargs)
    model_type = source.get("model_type")
    if model_type not in (ViTConfig.model_type, *TRANSFORMERS_MODEL_TYPES):
        raise ValueError(
            f"{path_or_id} holds a {model_type!r} model. vit_ft loads vit_ft, transformers 'vit', 'deit' and "
            "'vit_mae' checkpoints; convert timm weights with `vit-ft convert --from timm`."
        )
    config = kwargs.get("config")
    requested_size = config.image_size if isinstance(config, PretrainedConfig) else kwargs.get("image_size")
    saved_by = source.get("architectures") or []
    from_autoencoder = MASKED_AUTOENCODER in saved_by and model_class.__name__ != MASKED_AUTOENCODER
    if model_type == ViTConfig.model_type and requested_size in (None, source["image_size"]) and not from_autoencoder:
        with naming_damaged_weights(path_or_id, (MODEL_WEIGHTS,), hub_kwargs):
            return model_class.from_pretrained(path_or_id, **kwargs)
    return _from_converted(path_or_id, model_class, source, hub_kwargs, **kwargs)


def _from_converted(path_or_id: str, model_class, source: dict, hub_kwargs: dict, **kwargs) -> ViTPreTrainedModel:
    """Builds the model from a state dict converted to vit_ft's names and image size."""
    for key in hub_kwargs:
        kwargs.pop(key)
    state_dict = read_weights(path_or_id, hub_kwargs)
    if source["model_type"] in TRANSFORMERS_MODEL_TYPES:
        state_dict, dropped = convert_transformers_state_dict(state_dict)
        fields = config_from_transformers(source)
        decoder = [key for key in dropped if key.startswith(MAE_DECODER_PREFIX)]
        others = [key for key in dropped if not key.startswith(MAE_DECODER_PREFIX)]
        if decoder:
            logger.warning(
                f"Converting {path_or_id}: dropped the MAE decoder ({len(decoder)} weights): it only "
                "reconstructs pixels in pretraining; vit_ft reads the encoder."
            )
        if others:
            logger.warning(
                f"Converting {path_or_id}: dropped {len(others)} weights vit_ft does not use "
                f"(pooler, mask token): {', '.join(others)}."
            )
    else:
        fields = {
            k: v
            for k, v in source.items()
            if k not in ("model_type", "transformers_version", "auto_map", "architectures")
        }
    if MASKED_AUTOENCODER in (source.get("architectures") or []) and model_class.__name__ != MASKED_AUTOENCODER:
        decoder = [key for key in state_dict if key.startswith(DECODER_PREFIX)]
        state_dict = {key: value for key, value in state_dict.items() if not key.startswith(DECODER_PREFIX)}
        logger.warning(
            f"{path_or_id} is a masked-autoencoding (pretraining) model: its encoder is loaded, its "
            f"decoder ({len(decoder)} weights) is dropped."
        )
    config = kwargs.pop("config", None)
    config_class = model_class.config_class
    if not isinstance(config, PretrainedConfig):
        probe = config_class(**fields)
        overrides = {
            key: kwargs.pop(key) for key in list(kwargs) if hasattr(probe, key) and key != "attn_implementation"
        }
        if "num_labels" in overrides and "id2label" not in overrides:
            fields = {k: v for k, v in fields.items() if k not in ("id2label", "label2id")}
        config = config_class(**{**fields, **overrides})
    table = state_dict.get("vit.embeddings.position_embeddings")
    if table is not None and config.position_embedding_type == "learned":
        num_prefix = config.num_prefix_tokens if config.prefix_position_embeddings else 0
        grid = (config.image_size // config.patch_size,) * 2
        resized = resample_position_embeddings(table, num_prefix, grid)
        if resized.shape != table.shape:
            old = int((table.shape[1] - num_prefix) ** 0.5)
            logger.warning(
                f"Resized the position embeddings of {path_or_id} from {old}x{old} to {grid[0]}x{grid[1]} "
                f"patches (bicubic), for image_size {config.image_size}."
            )
        state_dict["vit.embeddings.position_embeddings"] = resized
    config.name_or_path = path_or_id
    return model_class.from_pretrained(None, config=config, state_dict=state_dict, **kwargs)


__all__ = ["load_checkpoint"]
