"""Settings come from one mapping + overrides; bad values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.config import LAMBDA_PAYLOAD_LIMIT, Settings
from lookalike.errors import ConfigError


def test_defaults_from_empty_environment():
    s = Settings.from_env({"HOME": "/home/u"})
    assert s.index_dir == Path("/home/u/.local/share/lookalike/index")
    assert s.cache_dir == Path("/home/u/.cache/lookalike")
    assert s.backbone == "efficientnet-lite2" and s.api_key is None and s.cors_origins == ()
    assert s.max_request_bytes == LAMBDA_PAYLOAD_LIMIT == 6 * 1024 * 1024
    assert s.host == "127.0.0.1"


def test_typed_casts():
    s = Settings.from_env({
        "HOME": "/h", "LOOKALIKE_INDEX_DIR": "~/idx", "LOOKALIKE_K_MAX": "50", "LOOKALIKE_API_KEY": "sekret",
        "LOOKALIKE_CORS_ORIGINS": "https://a.example, https://b.example", "LOOKALIKE_MODEL": "/m.onnx"})
    assert s.k_max == 50 and s.api_key == "sekret" and s.model == Path("/m.onnx")
    assert s.cors_origins == ("https://a.example", "https://b.example")
    assert str(s.index_dir).endswith("idx") and "~" not in str(s.index_dir)


def test_overrides_win_and_none_is_ignored():
    s = Settings.from_env({"LOOKALIKE_PORT": "9000"}, port=None, backbone="resnet50")
    assert s.port == 9000 and s.backbone == "resnet50"
    assert Settings.from_env({"LOOKALIKE_PORT": "9000"}, port=8001).port == 8001


@pytest.mark.parametrize("key,value", [("LOOKALIKE_PORT", "eighty"), ("LOOKALIKE_PORT", "70000"),
                                       ("LOOKALIKE_BATCH_SIZE", "0"), ("LOOKALIKE_OPENSEARCH_AUTH", "magic"),
                                       ("LOOKALIKE_CORS_ORIGINS", "*,https://x.example")])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({key: value})
    assert key in err.value.message and "not valid" in err.value.message


def test_empty_optional_values_mean_unset():
    s = Settings.from_env({"LOOKALIKE_API_KEY": "", "LOOKALIKE_MODEL": ""})
    assert s.api_key is None and s.model is None


def test_frozen():
    with pytest.raises(Exception):
        Settings.from_env({}).port = 1  # type: ignore[misc]
