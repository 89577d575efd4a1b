"""The training split read by (epoch, row) keys: each example's augmentation follows its epoch into the workers."""

import pytest
import torch
from torch.utils.data import DataLoader, SequentialSampler
from transformers import ViTImageProcessor

from vit_ft.data.arguments import AugmentationArguments, DataArguments
from vit_ft.data.datasets import load_image_datasets
from vit_ft.data.epochs import EpochDataset, EpochSampler
from vit_ft.data.transforms import ExampleTransform, build_train_transform, collate_images


@pytest.fixture(scope="module")
def train_split():
    data, _ = load_image_datasets(DataArguments(dataset_name="digits", max_train_samples=12, train_val_split=0))
    augmentation = AugmentationArguments(random_resized_crop_min_scale=0.3)
    transform = build_train_transform(ViTImageProcessor(size={"height": 16, "width": 16}), augmentation)
    return EpochDataset(data["train"], ExampleTransform(transform, seed=7))


def _pixels(dataset: EpochDataset, keys: list[tuple[int, int]]) -> list[torch.Tensor]:
    return [example["pixel_values"] for example in dataset.__getitems__(keys)]


def test_an_examples_augmentation_changes_with_the_epoch_and_repeats_for_the_same_epoch(train_split):
    first, second, again = _pixels(train_split, [(0, 5), (1, 5), (0, 5)])
    assert not torch.equal(first, second)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    # Neither the other examples of the batch nor the place in it change an example's draw.
    torch.testing.assert_close(_pixels(train_split, [(0, 3), (0, 4), (0, 5)])[2], first, rtol=0, atol=0)
    other_seed = EpochDataset(train_split.dataset, ExampleTransform(train_split.transform.transform, seed=8))
    assert not torch.equal(_pixels(other_seed, [(0, 5)])[0], first)


def test_the_epoch_reaches_persistent_dataloader_workers(train_split):
    sampler = EpochSampler(SequentialSampler(train_split))
    loader = DataLoader(
        train_split, batch_size=5, sampler=sampler, collate_fn=collate_images, num_workers=2, persistent_workers=True
    )
    by_epoch = {}
    for epoch in (0, 1, 0):  # workers start in epoch 0 and keep their copy of the dataset
        sampler.set_epoch(epoch)
        pixels = torch.cat([batch["pixel_values"] for batch in loader])  # (12, 3, 16, 16)
        expected = torch.stack(_pixels(train_split, [(epoch, row) for row in range(12)]))
        torch.testing.assert_close(pixels, expected, rtol=0, atol=0)
        by_epoch.setdefault(epoch, pixels)
    assert not torch.equal(by_epoch[0], by_epoch[1])


def test_the_sampler_passes_the_epoch_on_and_keys_its_indices():
    class Recording(SequentialSampler):
        def set_epoch(self, epoch):
            self.epoch = epoch

    inner = Recording(range(3))
    sampler = EpochSampler(inner)
    sampler.set_epoch(4)
    assert inner.epoch == 4 and list(sampler) == [(4, 0), (4, 1), (4, 2)] and len(sampler) == 3
