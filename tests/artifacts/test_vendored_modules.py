"""The module lists each artifact vendors are closed: every lookalike module they import is in the list.

The packaged tests find the same fault only after wheels are downloaded and TorchServe or the Lambda
runtime starts; this finds it in a second, with the copy alone on the path."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from lookalike.artifacts.packaging import LAMBDA_MODULES, MODEL_MODULES, PACKAGE_ROOT


def _dotted(rel: str) -> str:
    name = "lookalike." + rel.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


@pytest.mark.parametrize("modules", [MODEL_MODULES, LAMBDA_MODULES], ids=["model.tar.gz", "lambda.zip"])
def test_each_vendored_module_imports_from_the_copy_alone(modules, tmp_path):
    for rel in modules:
        target = tmp_path / "lookalike" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE_ROOT / rel, target)
    script = ("import importlib, sys; sys.path.insert(0, sys.argv[1])\n"
              # an editable install's finder would resolve lookalike.* from the checkout
              "sys.meta_path[:] = [f for f in sys.meta_path if not f.__module__.startswith('__editable__')]\n"
              "import lookalike; assert lookalike.__file__.startswith(sys.argv[1]), lookalike.__file__\n"
              "for name in sys.argv[2:]: importlib.import_module(name)\n")
    # -I and no editable finder: neither the checkout nor an installed lookalike can fill a gap in the copy.
    result = subprocess.run([sys.executable, "-I", "-c", script, str(tmp_path), *map(_dotted, modules)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]


def test_the_check_sees_a_missing_module(tmp_path):
    """The same check, given the model list without errors.py, fails: it is not vacuous."""
    partial = tuple(rel for rel in MODEL_MODULES if rel != "errors.py")
    with pytest.raises(AssertionError, match="errors"):
        test_each_vendored_module_imports_from_the_copy_alone(partial, tmp_path)
