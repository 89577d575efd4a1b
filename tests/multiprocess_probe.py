"""Runs `vit-ft train` under `accelerate launch`, recording what each rank does (used by test_multiprocess.py).

Each rank appends JSON lines to $VIT_FT_PROBE_DIR/rank<N>.jsonl: the dataset rows it fetched (with the dataset size,
which tells train from eval), each example a train stream yields (its id and epoch), every save_pretrained call and the
size of every evaluation it scored.
"""

import json
import os
import sys
from pathlib import Path

import datasets
from transformers import PreTrainedModel

from vit_ft.cli import main
from vit_ft.data.epochs import EpochDataset
from vit_ft.data.streams import TrainStream
from vit_ft.evaluation import metrics as classification_metrics

RANK = int(os.environ.get("RANK", "0"))
LOG = Path(os.environ["VIT_FT_PROBE_DIR"]) / f"rank{RANK}.jsonl"


def record(**entry) -> None:
    with LOG.open("a") as handle:
        handle.write(json.dumps(entry) + "\n")


fetch = datasets.Dataset.__getitems__
fetch_train = EpochDataset.__getitems__


def recorded_fetch(self, keys):
    record(event="fetch", size=len(self), keys=[int(key) for key in keys])
    return fetch(self, keys)


def recorded_train_fetch(self, keys):
    # The training split is read by (epoch, row) keys; the rows are what the test compares.
    record(event="fetch", size=len(self), keys=[int(row) for _, row in keys])
    return fetch_train(self, keys)


stream_example = TrainStream._example


def recorded_stream_example(self, row, epoch):
    record(event="stream", id=int(row["example_id"]), epoch=epoch)
    return stream_example(self, row, epoch)


save = PreTrainedModel.save_pretrained


def recorded_save(self, save_directory, *args, **kwargs):
    record(event="save", directory=str(save_directory))
    return save(self, save_directory, *args, **kwargs)


score = classification_metrics.ClassificationMetrics.__call__


def recorded_score(self, prediction):
    metrics = score(self, prediction)
    record(event="metrics", examples=len(prediction.label_ids), labels=prediction.label_ids.tolist(), **metrics)
    return metrics


datasets.Dataset.__getitems__ = recorded_fetch
EpochDataset.__getitems__ = recorded_train_fetch
TrainStream._example = recorded_stream_example
PreTrainedModel.save_pretrained = recorded_save
classification_metrics.ClassificationMetrics.__call__ = recorded_score

if __name__ == "__main__":
    main(sys.argv[1:])
