"""Writes a few images of a data set's split as PNG files named after their label, for `vit-ft predict`, `explain` and
`export` to try on: the README's quickstart uses it on the built-in digits.

    python scripts/write_sample_images.py --dataset_name digits --count 5 --output digit_images

writes `digit_images/0_test24.png`, `digit_images/1_test16.png`, ... (label, split, row): the first image of each class
in turn, as the data set stores it (the 8x8 digits stay 8x8; the model's image processor resizes them).
Any `dataset_name` that `vit-ft train` reads works: a built-in set, a Hub id, a folder.
"""

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vit_ft.data.arguments import DataArguments  # noqa: E402
from vit_ft.data.datasets import first_of_each_class, load_image_datasets  # noqa: E402
from vit_ft.data.transforms import decode_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset_name", default="digits", help="A built-in set, a Hub dataset id or a folder.")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--output", default="sample_images", help="The folder the PNG files go to (created).")
    args = parser.parse_args()
    if args.count < 1:
        parser.error(f"--count {args.count}: write at least one image.")
    data, names = load_image_datasets(DataArguments(dataset_name=args.dataset_name, train_val_split=0.0))
    if args.split not in data:
        parser.error(f"--split {args.split}: {args.dataset_name} has the splits {', '.join(data)}.")
    split = data[args.split]
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    for row in first_of_each_class(split["label"], args.count):
        path = output / f"{names[split[row]['label']]}_{args.split}{row}.png"
        decode_image(split[row]["image"]).save(path)
        print(path)


if __name__ == "__main__":
    main()
