"""Matching a checkpoint's classes to a dataset's: the name, index and auto rules, and what each says."""

import logging

import pytest

from vit_ft.checkpoints.labels import match_labels

ADVICE = "Use data with the teacher's classes."
# ImageNet's classic list names classes 134 (the bird) and 517 (the machine) both `crane`; a dataset, which cannot
# repeat a class name, calls one of them `crane2`. The other names stand in for the rest of the 1000.
IMAGENET = ["crane" if i in (134, 517) else f"class {i}" for i in range(1000)]
IMAGENET_DATA = [*IMAGENET[:517], "crane2", *IMAGENET[518:]]
TEACHER = ["bird", "crane", "crane", "dog", "egg", "fox"]


def _match(names: list[str], data: list[str], rule: str = "auto") -> None:
    match_labels(dict(enumerate(names)), data, "teacher", "deit", ADVICE, rule, "teacher_label_matching")


def test_auto_matches_imagenet_by_position_where_the_data_renamed_a_repeated_name(caplog):
    with caplog.at_level(logging.INFO, logger="vit_ft.checkpoints.labels"):
        _match(IMAGENET, IMAGENET_DATA)
    assert [record.message for record in caplog.records] == [
        "The labels of teacher deit are matched to the dataset's by position (teacher_label_matching=auto): 1 of "
        "1000 names differ, each a name the teacher repeats that the dataset made unique (class 517: 'crane' for "
        "the teacher, 'crane2' in the data)."
    ]


@pytest.mark.parametrize("renamed", ["crane2", "crane_1", "crane-2", "crane 2", "crane.3", "crane_12"])
def test_auto_takes_a_numeric_suffix_with_or_without_one_separator(renamed):
    _match(TEACHER, ["bird", "crane", renamed, "dog", "egg", "fox"])
    _match(TEACHER, ["bird", "crane_1", "crane_2", "dog", "egg", "fox"])  # both renamed


@pytest.mark.parametrize(
    "data",
    [
        ["bird", "crane", "heron", "dog", "egg", "fox"],  # another class
        ["bird", "crane", "crane2", "dog2", "egg", "fox"],  # `dog` is not repeated by the teacher
        ["bird", "crane", "cranes", "dog", "egg", "fox"],  # not a numeric suffix
        ["bird", "crane", "crane__2", "dog", "egg", "fox"],  # two separators
    ],
)
def test_auto_refuses_any_other_difference_and_names_the_field_that_would_accept_it(data):
    with pytest.raises(ValueError) as error:
        _match(TEACHER, data)
    message = str(error.value)
    assert message.startswith("The labels of teacher deit (6 classes) differ from the dataset's (6): class ")
    assert message.endswith(
        f"{ADVICE} If they are the same classes under other names, set teacher_label_matching=index."
    )


def test_name_refuses_the_renamed_duplicate():
    with pytest.raises(ValueError, match=r"class 517 is 'crane' for the teacher, 'crane2' in the data\. Use data"):
        _match(IMAGENET, IMAGENET_DATA, "name")


def test_other_counts_are_matched_by_name_and_refused_without_advising_index():
    with pytest.raises(ValueError) as error:
        _match(TEACHER, TEACHER[:5])
    assert "(6 classes) differ from the dataset's (5): class 5 is 'fox' for the teacher, '(none)' in the data" in str(
        error.value
    )
    assert "index" not in str(error.value)
    with pytest.raises(ValueError, match=r"^teacher_label_matching=index matches classes by position, but teacher"):
        _match(TEACHER, TEACHER[:5], "index")


def test_index_trusts_positions_and_says_how_many_names_differ(caplog):
    with caplog.at_level(logging.INFO, logger="vit_ft.checkpoints.labels"):
        _match(["a", "b", "c", "d", "e"], ["0", "1", "c", "3", "4"], "index")
    assert caplog.messages == [
        "The labels of teacher deit are matched to the dataset's by position (teacher_label_matching=index): 4 of 5 "
        "names differ (class 0: 'a' for the teacher, '0' in the data; class 1: 'b' for the teacher, '1' in the data; "
        "class 3: 'd' for the teacher, '3' in the data; ...)."
    ]


def test_the_same_names_match_by_name_under_every_rule(caplog):
    for rule in ("auto", "name", "index"):
        with caplog.at_level(logging.INFO, logger="vit_ft.checkpoints.labels"):
            _match(TEACHER, list(TEACHER), rule)
    assert caplog.messages == ["The labels of teacher deit are the dataset's: 6 classes, matched by name."] * 3


def test_an_unknown_rule_is_one_line_naming_the_field():
    with pytest.raises(ValueError, match=r"^teacher_label_matching='position': choose auto \(names, or positions"):
        _match(TEACHER, TEACHER, "position")
