"""The seed of each example's random draws: its training augmentation per epoch, its corruption noise per stream."""

import numpy as np


def example_seed(seed: int, example_id: int, stream: int = 0, *, epoch: int | None = None) -> int:
    """
    The seed of example `example_id`'s random draws under run seed `seed`: with an `epoch`, its training augmentation
    in that epoch (see `transforms.ExampleTransform`); without, its corruption noise (see `corruptions`), `stream` 0
    for a first corruption and another `stream` for one on top of it. The same numbers give the same seed in any
    process, worker or Python version.

    The two kinds are computed as they were when the documented results were trained and measured, so those results
    still reproduce: a fixed linear mixing for augmentations, numpy's SeedSequence (which hashes its input, so nearby
    pairs get unrelated seeds that do not line up with the augmentation ones) for noise.
    """
    if epoch is not None:
        if stream:
            raise ValueError(
                f"example_seed got epoch={epoch} and stream={stream}: an augmentation seed takes an "
                "epoch, a corruption-noise seed a stream; give one of them."
            )
        return ((seed * 1_000_003 + epoch) * 1_000_003 + example_id) % 2**63
    return int(np.random.SeedSequence([seed, example_id, *([stream] if stream else [])]).generate_state(1)[0])
