"""Batch-level mixing of a training batch: MixUp, CutMix and label smoothing into soft targets."""

import torch
from torchvision.transforms import v2


class BatchMixer:
    """
    MixUp (Zhang et al. 2018) or CutMix (Yun et al. 2019), one of them per batch when both are on, then label
    smoothing (Szegedy et al. 2016); integer labels become target distributions `(batch, num_labels)`.
    """

    def __init__(self, num_labels: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, smoothing: float = 0.0):
        mixers = []
        if mixup_alpha > 0:
            mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_labels))
        if cutmix_alpha > 0:
            mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_labels))
        self.mix = v2.RandomChoice(mixers) if mixers else None
        self.num_labels = num_labels
        self.smoothing = smoothing

    @property
    def active(self) -> bool:
        return self.mix is not None or self.smoothing > 0

    def __call__(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mix is not None:
            pixel_values, labels = self.mix(pixel_values, labels)
        else:
            labels = torch.nn.functional.one_hot(labels, self.num_labels).to(pixel_values.dtype)
        if self.smoothing > 0:
            labels = labels * (1.0 - self.smoothing) + self.smoothing / self.num_labels
        return pixel_values, labels
