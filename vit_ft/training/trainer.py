"""`ViTTrainer`: the transformers Trainer with batch mixing, distillation, layer-wise learning-rate decay and EMA
evaluation."""

import contextlib
from collections import defaultdict

import torch
from accelerate.data_loader import prepare_data_loader
from torch.distributed.fsdp import FSDPModule
from torch.utils.data import DataLoader
from transformers import Trainer

from ..data.epochs import EpochDataset, EpochSampler
from ..data.streams import TrainStream
from ..data.transforms import SKIPPED_IMAGES
from ..hub.card import write_model_card
from ..output_dir import SplitMetrics, save_results
from .arguments import DistillationArguments
from .distillation import Teacher, distillation_loss
from .mixing import BatchMixer
from .optimization import EMACallback, parameter_groups
from .stream_positions import StreamPositionCallback, read_stream_position


class ViTTrainer(Trainer):
    """
    A `Trainer` that, in training steps only, mixes batches (MixUp/CutMix, label smoothing) into soft targets the
    model's loss takes and, given a `teacher`, adds its distillation loss (see `vit_ft.training.distillation`),
    logging both terms; builds AdamW groups with layer decay and weight-decay exclusions; and evaluates with the EMA
    weights when `ema` is given. Evaluation losses are the model's own: the teacher runs in training steps only.

    Counts the images `collate_images` left out as undecodable: `skipped_training_images()` over the training
    steps, `<prefix>_skipped_images` in every evaluation's and prediction's metrics; summed over processes. Reads
    an `EpochDataset` train split by `(epoch, row)` keys (see `vit_ft.data.epochs`). A `TrainStream` train split
    (see `vit_ft.data.streams`) is read by each process on its own, its position saved in each checkpoint and resumed
    from there.
    """

    def __init__(
        self,
        *args,
        batch_mixer: BatchMixer | None = None,
        ema: EMACallback | None = None,
        teacher: Teacher | None = None,
        distillation: DistillationArguments | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.batch_mixer = batch_mixer
        self.ema = ema
        # Kept beside the model, not in it: accelerate never wraps it (DDP, FSDP) nor does the optimizer see it.
        self.teacher = teacher.to(self.args.device) if teacher is not None else None
        if teacher is not None and distillation is None:
            raise ValueError("A teacher needs its loss settings: pass distillation=DistillationArguments(...).")
        self.distillation = distillation
        self._loss_terms: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._skipped_images: dict[str, int | torch.Tensor] = {"train": 0, "eval": 0}  # on this process
        if ema is not None:
            self.add_callback(ema)
        if isinstance(self.train_dataset, TrainStream):
            self.add_callback(StreamPositionCallback())
        # Label smoothing lives in `batch_mixer`'s targets: the Trainer's own smoother expects class ids.
        self.label_smoother = None
        self.demo_space: str | None = None  # the Space of the model's demo, pushed after it (`with_demo: true`)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = self.model if model is None else model
            groups = parameter_groups(
                model,
                self.args.learning_rate,
                self.args.weight_decay,
                self.args.layer_decay,
                self.model.config.num_hidden_layers,
            )
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and self.batch_mixer is not None and self.batch_mixer.active:
            pixel_values, labels = self.batch_mixer(inputs["pixel_values"], inputs["labels"])
            inputs = {**inputs, "pixel_values": pixel_values, "labels": labels}
        if not (model.training and self.teacher is not None):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # The loss is a mean over the batch, as the model's own: the Trainer scales it for gradient accumulation.
        outputs = model(pixel_values=inputs["pixel_values"])
        settings = self.distillation
        terms = distillation_loss(
            outputs,
            inputs["labels"],
            self.teacher(inputs["pixel_values"]),
            settings.distillation_type,
            settings.distillation_alpha,
            settings.distillation_temperature,
            self.model.config.problem_type,
        )
        for name in ("label_loss", "distillation_loss"):
            self._loss_terms[name].append(terms[name])
        return (terms["loss"], outputs) if return_outputs else terms["loss"]

    def get_train_dataloader(self):
        if isinstance(self.train_dataset, TrainStream):
            return self._stream_dataloader(self.train_dataset)
        dataloader = super().get_train_dataloader()
        if isinstance(self.train_dataset, EpochDataset):
            # accelerate's public sampler swap: the Trainer's set_epoch still reaches the shuffling sampler, through
            # the EpochSampler, whose keys take the epoch to the dataloader workers.
            dataloader.set_sampler(EpochSampler(dataloader.get_sampler()))
            # The EpochSampler makes the loader's per-iterator draw from the global stream, once per epoch; the torch
            # DataLoader inside accelerate's wrapper draws from a generator of its own.
            dataloader.base_dataloader.generator = torch.Generator().manual_seed(self.args.seed)
        return dataloader

    def _stream_dataloader(self, stream: TrainStream):
        """
        The loader of a train stream. The stream already holds only this process's shards, so accelerate must neither
        split its batches among the processes (its default for iterable data: `IterableDatasetShard`) nor send them
        from the first process (`dispatch_batches`); it puts them on the device, and torchdata's StatefulDataLoader
        keeps each worker's position for the checkpoints.
        """
        args = self.args
        loader = DataLoader(
            stream,
            batch_size=stream.batch_size,
            collate_fn=self.data_collator,
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers,
            prefetch_factor=args.dataloader_prefetch_factor,
        )
        return prepare_data_loader(
            loader,
            args.device,
            num_processes=1,
            process_index=0,
            put_on_device=True,
            dispatch_batches=False,
            use_stateful_dataloader=True,
        )

    def get_resumed_dataloader(self, dataloader, num_batches: int):
        if not isinstance(self.train_dataset, TrainStream):
            return super().get_resumed_dataloader(dataloader, num_batches)
        # Each worker starts where the checkpoint left it: nothing before is read again.
        args = self.args
        dataloader.load_state_dict(
            read_stream_position(
                args.resume_from_checkpoint, args.world_size, args.process_index, args.dataloader_num_workers
            )
        )
        return dataloader

    def training_step(self, model, inputs: dict, num_items_in_batch=None) -> torch.Tensor:
        # Every training micro-batch comes through here, gradient accumulation included.
        return super().training_step(model, self._count_skipped_images(inputs, "train"), num_items_in_batch)

    def prediction_step(self, model, inputs: dict, prediction_loss_only: bool, ignore_keys=None):
        # Every batch of `evaluate` and `predict` comes through here (from `evaluation_loop`).
        inputs = self._count_skipped_images(inputs, "eval")
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    def _count_skipped_images(self, inputs: dict, split: str) -> dict:
        """The batch without the count `collate_images` put in it, which is added to this process's `split` count."""
        inputs = dict(inputs)
        skipped = inputs.pop(SKIPPED_IMAGES, None)
        if skipped is not None:
            # Summed as tensors: reading the count back (int()) would wait for the GPU at every step.
            self._skipped_images[split] += skipped
        return inputs

    def skipped_training_images(self) -> int:
        """Images left out of training batches as undecodable in this run's `train` calls, over all processes."""
        return self._sum_over_processes(self._skipped_images["train"])

    def evaluation_loop(self, *args, metric_key_prefix: str = "eval", **kwargs):
        self._skipped_images["eval"] = 0
        output = super().evaluation_loop(*args, metric_key_prefix=metric_key_prefix, **kwargs)
        skipped = SplitMetrics(skipped_images=self._sum_over_processes(self._skipped_images["eval"]))
        output.metrics.update(skipped.as_metrics(metric_key_prefix))
        return output

    def _sum_over_processes(self, count: int | torch.Tensor) -> int:
        total = torch.as_tensor(count, device=self.args.device)
        return int(self.accelerator.reduce(total, reduction="sum") if self.args.world_size > 1 else total)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._loss_terms:
            # Means over the steps since the last log, on this process, beside the Trainer's `loss`.
            logs.update({name: torch.stack(values).mean().item() for name, values in self._loss_terms.items()})
            self._loss_terms.clear()
        super().log(logs, start_time)

    def evaluate(self, *args, **kwargs):
        with self._evaluation_context():
            return super().evaluate(*args, **kwargs)

    def predict(self, *args, **kwargs):
        with self._evaluation_context():
            return super().predict(*args, **kwargs)

    def save_metrics(self, split: str, metrics: dict, combined: bool = True) -> None:
        """The Trainer's `save_metrics`, written atomically: a run killed meanwhile leaves no half-written file."""
        if self.is_world_process_zero():
            save_results(self.args.output_dir, split, metrics, combined)

    def create_model_card(self, license: str | None = None, **trainer_card_fields) -> None:
        """
        vit-ft's card (`vit_ft.hub.card`) in README.md, for the Trainer's draft: `push_to_hub` uploads it. It links
        `demo_space`, the Space a `with_demo: true` run pushes after the model, when set.
        """
        if self.is_world_process_zero():
            write_model_card(self.args.output_dir, self.hub_model_id, license, self.demo_space)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """
        As the Trainer's, with the model's own class while it saves: FSDP2's `fully_shard` swaps it for a subclass
        generated inside torch, whose module `save_pretrained` would copy as remote code and name in `auto_map`. The
        generated class only adds FSDP's methods, which saving does not use; the sharded parameters stay DTensors.
        """
        model = self.model
        wrapped = type(model)
        if not isinstance(model, FSDPModule):
            return super().save_model(output_dir, _internal_call)
        model.__class__ = next(klass for klass in wrapped.__mro__ if not issubclass(klass, FSDPModule))
        try:
            super().save_model(output_dir, _internal_call)
        finally:
            model.__class__ = wrapped

    @contextlib.contextmanager
    def _evaluation_context(self):
        """
        EMA weights if any, and the random streams given back untouched: creating the evaluation dataloader draws
        from them, which would otherwise shift every later dropout, drop-path and MixUp draw of training.
        """
        devices = [self.args.device] if self.args.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            with self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext():
                yield
