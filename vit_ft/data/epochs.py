"""
The training split read by (epoch, row) keys, so that each example's augmentation, seeded by its epoch, gets that
epoch in whichever dataloader worker transforms it.

The Trainer tells the epoch to the train sampler (`set_epoch`, through accelerate's `DataLoaderShard.set_epoch`), in
the main process. A dataloader worker, persistent ones included, keeps the copy of the dataset it started with, so
an attribute set on the dataset in the main process after that never reaches it; the sampler's keys do, as they are
sent to the workers for every batch.
"""

import torch
from datasets import Dataset
from torch.utils.data import Sampler


class EpochSampler(Sampler):
    """
    Yields each index of `sampler` (the Trainer's train sampler, accelerate's `SeedableRandomSampler` by default) as an
    `(epoch, index)` key, for `EpochDataset`. `set_epoch` is passed on to `sampler`, so the shuffle stays its own.
    """

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):  # a plain RandomSampler (use_seedable_sampler false) has none
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        # One draw from the global random stream per pass, where torch's DataLoader draws its workers' base seed when
        # it makes an iterator: once per epoch without persistent workers, once per run with them. The Trainer's
        # loader draws from a generator of its own instead (`ViTTrainer.get_train_dataloader`), so dropout,
        # drop-path and MixUp see the same stream whether the workers persist or not, and the one they always saw.
        torch.empty((), dtype=torch.int64).random_()
        epoch = self.epoch
        for index in self.sampler:
            yield epoch, index

    def __len__(self) -> int:
        return len(self.sampler)


class EpochDataset(torch.utils.data.Dataset):
    """
    `dataset` (columns `image`, `label`, `example_id`, no transform set) read by `EpochSampler`'s `(epoch, row)`
    keys: the rows of a batch get an `epoch` column and go through `transform` (a seeded `ExampleTransform`, or a
    `CorruptedExampleTransform` around one), which draws each example's augmentation from (seed, example_id, epoch).
    `ViTTrainer.get_train_dataloader` gives a train dataset of this type its `EpochSampler`.
    """

    def __init__(self, dataset: Dataset, transform):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[dict]:
        epochs, rows = zip(*keys)
        batch = self.transform({**self.dataset[list(rows)], "epoch": list(epochs)})
        return [dict(zip(batch, values)) for values in zip(*batch.values())]

    def __getitem__(self, key: tuple[int, int]) -> dict:
        return self.__getitems__([key])[0]
