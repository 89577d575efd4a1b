"""`vit-ft knn`: k-nearest-neighbour accuracy of a model's frozen features, as self-supervised papers report it.

The classifier is DINO's (Caron et al. 2021, `eval_knn.py` `knn_classifier`; also lightly's `knn_predict`, after Wu
et al. 2018): features L2-normalised, cosine similarity to every training feature, the k most similar vote for their
class with weight exp(similarity / T), k = 20 and T = 0.07 by default (DINO's reported setting).

    from vit_ft.evaluation.knn import knn_evaluate
    results = knn_evaluate("outputs/digits", DataArguments(dataset_name="digits", train_samples_per_class=10))
"""

import logging
from pathlib import Path

import torch
from datasets import Dataset
from torch.utils.data import DataLoader

from ..data.arguments import DataArguments
from ..data.corruptions import with_corruption
from ..data.datasets import load_image_datasets
from ..data.transforms import SKIPPED_IMAGES, ExampleTransform, build_eval_transform, collate_images
from ..output_dir import KNN_FIELDS, check_result_file, knn_file, write_json

logger = logging.getLogger(__name__)

DEFAULT_K = 20  # DINO, Table 2's k-NN column (eval_knn.py's nb_knn 20)
DEFAULT_TEMPERATURE = 0.07  # DINO's eval_knn.py `temperature`, after Wu et al. 2018


def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    features: torch.Tensor,
    num_classes: int,
    k: int = DEFAULT_K,
    temperature: float = DEFAULT_TEMPERATURE,
) -> torch.Tensor:
    """
    Class ids `(n,)` of `features` `(n, dim)` by a temperature-weighted vote of their `k` most cosine-similar
    `train_features` `(m, dim)`, labelled `train_labels` `(m,)`. Features need not be normalised: they are here.
    """
    if not 1 <= k <= len(train_labels):
        raise ValueError(f"k={k} must be from 1 to the number of training images ({len(train_labels)}).")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be positive, e.g. {DEFAULT_TEMPERATURE}.")
    train_features = torch.nn.functional.normalize(train_features.float(), dim=1)
    features = torch.nn.functional.normalize(features.float(), dim=1)
    similarity = features @ train_features.T  # (n, m) cosine similarities
    top_similarity, top_rows = similarity.topk(k, dim=1)  # (n, k)
    # exp(s / T) scaled by exp(-s_max / T) per query: the same vote, without overflow at a small temperature.
    weights = ((top_similarity - top_similarity[:, :1]) / temperature).exp()  # (n, k)
    votes = torch.zeros(len(features), num_classes, dtype=weights.dtype)
    votes.scatter_add_(1, train_labels[top_rows], weights)  # (n, classes): each class's summed weight
    return votes.argmax(dim=1)


def encoder_features(model, dataset: Dataset, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The encoder's pooled features `(n, hidden)` of `dataset` (a split with its eval transform set, as
    `collate_images` reads it), pooled as the model pools (class token or normalised patch mean: `pooler_output`),
    and the labels `(n,)`. Undecodable images are left out of both.
    """
    encoder = model.vit  # a vit_ft ViTForImageClassification's encoder
    device = next(model.parameters()).device
    features, labels = [], []
    with torch.inference_mode():
        for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate_images):
            batch.pop(SKIPPED_IMAGES)
            features.append(encoder(batch["pixel_values"].to(device)).pooler_output.float().cpu())
            labels.append(batch["labels"])
    return torch.cat(features), torch.cat(labels)


def knn_evaluate(
    model_dir: str,
    data_args: DataArguments,
    split: str = "test",
    k: int = DEFAULT_K,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    batch_size: int = 256,
    output_file: str | None = None,
    overwrite: bool = False,
    trust_remote_code: bool = False,
) -> dict:
    """
    k-NN accuracy on `split` of the frozen features of the model in `model_dir` (a vit_ft model, a LoRA adapter
    merged on its base, or a transformers ViT/DeiT/ViTMAE checkpoint), its neighbours being the train split of the
    data `data_args` names: K images per class with `train_samples_per_class`, drawn with `seed` after the
    validation split is carved (as a `vit-ft train` run with that seed draws them). Writes the results as JSON to
    `output_file` (default `model_dir/knn_<split>.json`), replacing an earlier k-NN result only with `overwrite`
    and never another file, and returns them.
    """
    from ..checkpoints.loading import load_model, load_processor  # the model package: PyTorch only

    if split == "train":
        raise ValueError("split='train' holds the neighbours themselves: score validation or test.")
    output_file = Path(output_file or Path(model_dir) / knn_file(split))
    check_result_file(output_file, KNN_FIELDS, "knn", overwrite)
    model = load_model(model_dir, merge=True, trust_remote_code=trust_remote_code).eval()
    model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    data, label_names = load_image_datasets(data_args, seed)
    for needed in ("train", split):
        if needed not in data:
            raise ValueError(
                f"The data has no {needed} split (it has {', '.join(data)}): k-NN needs train and {split}."
            )
    processor = load_processor(model, model_dir, {}, trust_remote_code)
    transform = ExampleTransform(build_eval_transform(processor), strict=data_args.strict_images)
    train = with_corruption(data["train"], transform, *data_args.corruption)
    train_features, train_labels = encoder_features(model, train, batch_size)
    scored = with_corruption(data[split], transform, *data_args.corruption)
    features, labels = encoder_features(model, scored, batch_size)
    predicted = knn_predict(train_features, train_labels, features, len(label_names), k, temperature)
    results = {
        "model": str(model_dir),
        "split": split,
        "k": k,
        "temperature": temperature,
        "accuracy": (predicted == labels).float().mean().item(),
        "examples": len(labels),
        "train_images": len(train_labels),
        "train_samples_per_class": data_args.train_samples_per_class,
        "seed": seed,
        "train_val_split": data_args.train_val_split,
    }
    write_json(output_file, results)
    logger.info(f"Wrote {output_file}")
    return results


__all__ = ["DEFAULT_K", "DEFAULT_TEMPERATURE", "encoder_features", "knn_evaluate", "knn_predict"]
