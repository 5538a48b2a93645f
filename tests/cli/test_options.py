"""One mapping from flags to Settings: every flag that configures lookalike is stored under its
setting's name, and every default a help text states is the setting's own default."""

from __future__ import annotations

import argparse
import re

import pytest

from lookalike.cli import build_parser
from lookalike.cli.options import DEFAULTS, FIELDS, settings_from
from lookalike.config import Settings


def _subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


# Flags of the commands' own (not settings): what to do, not how lookalike is configured.
COMMAND_FLAGS = {"help", "func", "command", "folder", "image", "ids", "k", "label", "json", "quiet", "progress",
                 "prune", "verbose", "no_upload", "model_dir", "endpoint_name", "to", "recreate", "dataset", "seed",
                 "test_fraction", "val_fraction", "train_limit", "out", "approaches", "include_self", "limit",
                 "pca_dims", "pca_main", "timing_queries", "timing_images", "no_by_class", "no_whole", "models_out",
                 "epochs", "dim", "margin", "mining", "classes_per_batch", "per_class", "lr", "kind", "c", "split",
                 "id", "threshold", "csv", "job", "no_wait", "no_copy", "refit", "variants",
                 }


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_option_is_a_setting_or_the_commands_own(command):
    parser = _subcommands()[command]
    for action in parser._actions:
        assert action.dest in FIELDS or action.dest in COMMAND_FLAGS, \
            f"lookalike {command} {action.option_strings}: dest {action.dest!r} is neither a Settings field " \
            "nor one of the command's own flags"


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_help_defaults_are_the_settings_defaults(command):
    parser = _subcommands()[command]
    for action in parser._actions:
        if action.dest not in FIELDS or not action.help:
            continue
        stated = re.search(r"default (\S+?)[;)]", action.help)
        if stated:
            assert stated.group(1) == str(getattr(DEFAULTS, action.dest)), \
                f"lookalike {command} {action.option_strings[0]} says default {stated.group(1)}"


def test_flags_reach_settings_under_their_names():
    args = build_parser().parse_args(["push", "--to", "opensearch", "--url", "http://127.0.0.1:9", "--batch-size", "7",
                                      "--engine", "lucene", "--index-name", "x", "--region", "eu-west-1"])
    settings = settings_from(args)
    assert (settings.opensearch_url, settings.opensearch_bulk_size, settings.opensearch_engine,
            settings.opensearch_index, settings.aws_region) == ("http://127.0.0.1:9", 7, "lucene", "x", "eu-west-1")
    assert settings.batch_size == Settings().batch_size  # push's --batch-size counts documents, not images
    args = build_parser().parse_args(["index", "DIR", "--ef-search", "33", "--hnsw-m", "8", "--batch-size", "4"])
    settings = settings_from(args)
    assert (settings.hnsw_ef_search, settings.hnsw_m, settings.batch_size) == (33, 8, 4)
