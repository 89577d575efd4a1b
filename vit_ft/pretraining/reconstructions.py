"""`reconstructions.png`: what a masked autoencoder rebuilds of a few held-out images, as MAE's figures show it
(He et al. 2022, Figure 2): the original, the visible patches alone, and the rebuilt masked patches with the visible
ones pasted back."""

from pathlib import Path

import numpy as np
import torch

from ..evaluation.plots import plt
from ..model.modeling_vit_ft import ViTForMaskedAutoencoding, patchify, unpatchify


@torch.no_grad()
def reconstruct(
    model: ViTForMaskedAutoencoding, pixel_values: torch.Tensor, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The masked images and the reconstructions (both like `pixel_values`, (batch, channels, H, W), in the model's
    input space) under a mask drawn from `seed`. With `norm_pix_loss` the model predicts normalised patches: they are
    put back in pixel space with each original patch's mean and variance, as MAE's visualisation does.
    """
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    patches = (pixel_values.shape[-2] // config.patch_size) * (pixel_values.shape[-1] // config.patch_size)
    noise = torch.rand(pixel_values.shape[0], patches, generator=generator).to(pixel_values.device)
    was_training = model.training
    model.eval()
    outputs = model(pixel_values, noise=noise)
    model.train(was_training)
    target = patchify(pixel_values.to(outputs.logits.dtype), config.patch_size)  # (batch, patches, pixels)
    predicted = outputs.logits
    if config.norm_pix_loss:
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        predicted = predicted * (var + 1.0e-6) ** 0.5 + mean
    mask = outputs.mask.unsqueeze(-1)  # (batch, patches, 1), 1 = masked
    grid = (pixel_values.shape[-2] // config.patch_size, pixel_values.shape[-1] // config.patch_size)
    channels = pixel_values.shape[1]
    masked = unpatchify(target * (1 - mask), config.patch_size, grid, channels)
    rebuilt = unpatchify(target * (1 - mask) + predicted * mask, config.patch_size, grid, channels)
    return masked, rebuilt


def _to_picture(image: torch.Tensor, mean: list[float], std: list[float]) -> np.ndarray:
    """(channels, H, W) in the processor's normalised space to an (H, W, channels) array in [0, 1]."""
    mean_t = torch.tensor(mean, dtype=image.dtype).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=image.dtype).view(-1, 1, 1)
    return (image.float().cpu() * std_t + mean_t).clamp(0, 1).permute(1, 2, 0).numpy()


def plot_reconstructions(
    model: ViTForMaskedAutoencoding,
    pixel_values: torch.Tensor,
    image_mean: list[float],
    image_std: list[float],
    path: str | Path,
    seed: int = 0,
) -> Path:
    """Writes one row per image of `pixel_values` (normalised with `image_mean`, `image_std`): original, masked,
    reconstructed."""
    masked, rebuilt = reconstruct(model, pixel_values, seed)
    rows = pixel_values.shape[0]
    figure, axes = plt.subplots(rows, 3, figsize=(6, 2 * rows), squeeze=False)
    ratio = model.config.mask_ratio
    # With norm_pix_loss the masked patches' brightness and contrast come from the original (see `reconstruct`): the
    # title says so, since with small patches they carry most of what the picture shows.
    rebuilt_title = "rebuilt (patch mean/std\nfrom the original)" if model.config.norm_pix_loss else "rebuilt"
    for row in range(rows):
        pictures = (pixel_values[row], masked[row], rebuilt[row])
        for column, (picture, title) in enumerate(zip(pictures, ("original", f"masked ({ratio:.0%})", rebuilt_title))):
            axes[row, column].imshow(_to_picture(picture, image_mean, image_std), interpolation="nearest")
            axes[row, column].axis("off")
            if row == 0:
                axes[row, column].set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
