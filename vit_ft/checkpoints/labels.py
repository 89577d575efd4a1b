"""
Whether a checkpoint's classes are a dataset's, class for class: a teacher's logits and a model's scores mean nothing
when class i is not class i. `label_matching` (a teacher's `teacher_label_matching`, `vit-ft evaluate
--label_matching`) chooses the rule:

- `name`: the checkpoint's names are the data's, in the same order.
- `index`: class i is class i whenever both have as many classes; the names are not compared.
- `auto` (the default): as `name`, and also an index-aligned list in which every name that differs is one the
  checkpoint's list holds more than once, made unique by the dataset: the data's name is the checkpoint's followed by
  digits, with or without one separator (`_`, `-`, `.` or a space) before them. ImageNet's classic label list
  (transformers' and timm's `id2label`) names classes 134 (the bird) and 517 (the machine) both `crane`; `datasets`
  refuses two classes of one name, so an ImageNet dataset renames one of them (`crane2`), and `auto` accepts that.
"""

import logging
import re
from collections import Counter
from itertools import zip_longest

logger = logging.getLogger(__name__)

LABEL_MATCHINGS = ("auto", "name", "index")
# What a dataset appends to a repeated name to make it unique: `crane2`, `crane_2`, `maillot-1`, `crane 2`.
_UNIQUE_SUFFIX = re.compile(r"[ _.-]?\d+")


def check_label_matching(value: str, field: str) -> None:
    """Raises a one-line ValueError naming `field` unless `value` is one of `LABEL_MATCHINGS`."""
    if value not in LABEL_MATCHINGS:
        raise ValueError(
            f"{field}={value!r}: choose auto (names, or positions where a dataset made a repeated name "
            "unique), name (the same names in the same order) or index (positions only)."
        )


def _made_unique(theirs: str, data: str, repeated: set[str]) -> bool:
    """Whether the data's name `data` is the checkpoint's `theirs`, one of its `repeated` names, with a suffix."""
    return theirs in repeated and data.startswith(theirs) and _UNIQUE_SUFFIX.fullmatch(data[len(theirs) :]) is not None


def match_labels(
    id2label: dict[int, str],
    label_names: list[str],
    role: str,
    source: str,
    advice: str,
    label_matching: str = "auto",
    field: str = "label_matching",
) -> None:
    """
    Checks that the classes (`id2label`) of the `role` ("model", "teacher") in `source` are the data's `label_names`
    by the rule `label_matching` (see the module's docstring), and logs one line saying which rule matched them and
    how many names differ. Otherwise raises a ValueError naming each class that differs, ended by `advice` and, where
    another rule would accept the classes, by the setting (`field`) that chooses it.
    """
    check_label_matching(label_matching, field)
    names = [id2label[i] for i in sorted(id2label)]
    differing = [i for i, (theirs, data) in enumerate(zip(names, label_names)) if theirs != data]
    same_count = len(names) == len(label_names)
    if same_count and not differing:
        logger.info(f"The labels of {role} {source} are the dataset's: {len(names)} classes, matched by name.")
        return
    shown = "; ".join(
        f"class {i}: {names[i]!r} for the {role}, {label_names[i]!r} in the data" for i in differing[:3]
    ) + ("; ..." if len(differing) > 3 else "")
    if label_matching == "index":
        if not same_count:
            raise ValueError(
                f"{field}=index matches classes by position, but {role} {source} has {len(names)} "
                f"classes and the dataset {len(label_names)}. {advice}"
            )
        logger.warning(
            f"The labels of {role} {source} are matched to the dataset's by position ({field}=index): "
            f"{len(differing)} of {len(names)} names differ ({shown})."
        )
        return
    if label_matching == "auto" and same_count:
        repeated = {name for name, count in Counter(names).items() if count > 1}
        if all(_made_unique(names[i], label_names[i], repeated) for i in differing):
            logger.warning(
                f"The labels of {role} {source} are matched to the dataset's by position ({field}=auto): "
                f"{len(differing)} of {len(names)} names differ, each a name the {role} repeats that the "
                f"dataset made unique ({shown})."
            )
            return
    differences = [
        f"class {i} is {theirs!r} for the {role}, {data!r} in the data"
        for i, (theirs, data) in enumerate(zip_longest(names, label_names, fillvalue="(none)"))
        if theirs != data
    ]
    listed = "; ".join(differences[:10]) + ("; ..." if len(differences) > 10 else "")
    other_rule = f" If they are the same classes under other names, set {field}=index." if same_count else ""
    raise ValueError(
        f"The labels of {role} {source} ({len(names)} classes) differ from the dataset's ({len(label_names)}): "
        f"{listed}. {advice}{other_rule}"
    )
