"""
A streamed train split (`readers.StreamedSplit`) read as a torch `IterableDataset`, `TrainStream`: each process
reads its own shards, every process gets the same number of batches, and the position in the stream is part of each
checkpoint, so a resumed run goes on from where it stopped without reading what came before. docs/training.md
("Streaming") tells the user's side; this is the mechanism.

Readers. With W processes of K dataloader workers each there are R = W x K readers. Of the n shards, the first
R x floor(n / R) (in name order) take a seeded order each epoch, and reader r reads every R-th of them whole; the
n mod R last shards are read by every reader, which keeps every R-th example. Readers thus hold the same number of
examples when the shards read whole do: `vit-ft shard` writes them all of one size but the last.

Length. An epoch is the declared example count: ceil(examples / (W x batch)) batches on every process, dealt to its
workers in whole batches. A reader whose examples run out before its share starts its shards over (those examples
are seen twice in the epoch, as DistributedSampler pads); one with more than its share stops at it. Without a count,
a reader goes from one pass over its shards to the next until `max_steps` ends the run.

Shuffling. A reader reads `shuffle_shards` of its shards at a time into memory (undecoded) and yields their examples
in a seeded order: several shards feed the buffer, so examples of one shard do not come in a row.

Resume. The position, (epoch, pass, group of shards, offset in the group's order), is the dataset's `state_dict`,
which torchdata's StatefulDataLoader takes from each worker with every batch; the trainer writes it into each
checkpoint. On resume the reader reads that one group again and starts at the offset: the same examples in the same
order as in the uninterrupted run, at a cost of one group read, however many steps came before.
"""

import logging
import math

import numpy as np
import torch

from .readers import StreamedSplit

logger = logging.getLogger(__name__)

# An example's id is its shard's index times this plus its row in the shard: stable whatever reads it.
SHARD_ROW_SPAN = 2**32
# The rows read from a shard at a time (datasets' `IterableDataset.iter` batches).
READ_BATCH = 256


class DamagedShardError(ValueError):
    """A shard that cannot be read to its end; the message names it."""


class TrainStream(torch.utils.data.IterableDataset):
    """
    The train split `split` for this process (`rank` of `world_size`) as examples with columns `image`, `label`,
    `example_id` and `epoch`, each passed through `transform` (a seeded `ExampleTransform`, or a
    `CorruptedExampleTransform` around one), which draws its augmentation from (seed, example_id, epoch) as in
    map-style runs. `batch_size` is the per-process batch: the length is whole batches. See the module's docstring.
    """

    def __init__(
        self,
        split: StreamedSplit,
        transform,
        batch_size: int,
        seed: int,
        shuffle_shards: int = 4,
        rank: int = 0,
        world_size: int = 1,
        strict: bool = False,
    ):
        self.dataset = split.dataset
        self.shard_names = split.shard_names
        self.examples = split.examples
        self.transform = transform
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle_shards = shuffle_shards
        self.rank = rank
        self.world_size = world_size
        self.strict = strict
        self.epoch = 0
        self._position = None  # where this copy's iteration is, for state_dict
        self._resume_at = None  # set by load_state_dict, taken by the next iteration

    @property
    def batches_per_process(self) -> int | None:
        """Batches in an epoch on each process; None without a declared example count."""
        if self.examples is None:
            return None
        return math.ceil(self.examples / (self.world_size * self.batch_size))

    def __len__(self) -> int:
        if self.examples is None:
            raise TypeError("a stream without a declared example count has no length: max_steps counts the steps")
        return self.batches_per_process * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict:
        return dict(self._position or self._start(self.epoch))

    def load_state_dict(self, state: dict) -> None:
        self._resume_at = dict(state)

    @staticmethod
    def _start(epoch: int) -> dict:
        return {"epoch": epoch, "pass": 0, "group": 0, "offset": 0, "yielded": 0}

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        reader, readers = self.rank * workers + worker, self.world_size * workers
        quota = None if self.examples is None else self._worker_batches(workers, worker) * self.batch_size
        position = self._resume_at if self._resume_at and self._resume_at["epoch"] == self.epoch else None
        self._resume_at = None
        position = position or self._start(self.epoch)
        epoch, yielded = position["epoch"], position["yielded"]
        first_pass = position["pass"]
        for pass_index in range(first_pass, 2**31):
            groups = self._groups(epoch, pass_index, reader, readers)
            start_group = position["group"] if pass_index == first_pass else 0
            read_any = False
            for group_index in range(start_group, len(groups)):
                rows = self._read_group(groups[group_index], reader)
                read_any = read_any or bool(rows)
                generator = np.random.default_rng([self.seed, epoch, pass_index, reader, group_index])
                order = generator.permutation(len(rows))
                start = position["offset"] if (pass_index, group_index) == (first_pass, position["group"]) else 0
                for offset in range(start, len(rows)):
                    if quota is not None and yielded >= quota:
                        return
                    yielded += 1
                    self._position = {
                        "epoch": epoch,
                        "pass": pass_index,
                        "group": group_index,
                        "offset": offset + 1,
                        "yielded": yielded,
                    }
                    yield self._example(rows[order[offset]], epoch + pass_index)
            if quota is not None and yielded >= quota:
                return
            if not read_any and start_group == 0:
                raise ValueError(
                    f"Reader {reader} of {readers} (process {self.rank}, dataloader worker {worker}) got no "
                    f"examples from its {len(groups)} group(s) of the {len(self.shard_names)} shard(s): use fewer "
                    "dataloader workers or processes, or more shards."
                )

    def _worker_batches(self, workers: int, worker: int) -> int:
        """This worker's batches of its process's epoch: its process's batches dealt out, first workers first."""
        batches = self.batches_per_process
        return batches // workers + (worker < batches % workers)

    def _groups(self, epoch: int, pass_index: int, reader: int, readers: int) -> list[list[tuple[int, int | None]]]:
        """
        The (shard, stripe) units this reader reads in a pass, in groups of `shuffle_shards`: stripe None reads the
        whole shard, stripe `readers` keeps the rows whose number is `reader` modulo `readers`.
        """
        count = len(self.shard_names)
        whole = count - count % readers
        # The last shards in name order are the ones striped: a writer's last shard is the one that holds fewer.
        order = np.random.default_rng([self.seed, epoch, pass_index]).permutation(whole).tolist()
        units = [(order[i], None) for i in range(reader, whole, readers)]
        units += [(shard, readers) for shard in range(whole, count)]
        return [units[i : i + self.shuffle_shards] for i in range(0, len(units), self.shuffle_shards)]

    def _read_group(self, units: list[tuple[int, int | None]], reader: int) -> list[dict]:
        rows = []
        for shard, stripe in units:
            for row, example in enumerate(self._read_shard(shard)):
                if stripe is None or row % stripe == reader:
                    rows.append({**example, "example_id": shard * SHARD_ROW_SPAN + row})
        return rows

    def _read_shard(self, shard: int):
        """The examples of shard number `shard`, in its order; a damaged shard ends early with a warning naming it."""
        name = self.shard_names[shard]
        part = self.dataset.shard(num_shards=self.dataset.n_shards, index=shard)
        try:
            # `iter` rather than `for example in part`: in a dataloader worker, iterating a datasets IterableDataset
            # splits it across the workers again, and one shard would go to one worker only.
            for batch in part.iter(batch_size=READ_BATCH):
                columns = [name for name in ("image", "label") if name in batch]  # unlabelled images: no label
                yield from (dict(zip(columns, values)) for values in zip(*(batch[name] for name in columns)))
        except Exception as error:  # tarfile, pyarrow and fsspec raise many types for a cut or corrupt file
            reason = " ".join(str(error).split()) or type(error).__name__
            message = f"Shard {name} is damaged ({reason})"
            if self.strict:
                raise DamagedShardError(f"{message}: write it again, or take it out of train_shards.") from error
            logger.warning(f"{message}: the rest of it is left out; strict_images makes this fatal.")

    def _example(self, row: dict, epoch: int) -> dict:
        batch = self.transform({key: [value] for key, value in {**row, "epoch": epoch}.items()})
        return {key: values[0] for key, values in batch.items()}
