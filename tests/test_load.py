"""Many people at once against a real server: every answer arrives, for its own question."""

import importlib.util
import os

import pytest

from .conftest import ROOT
from .ui_helpers import make_service, running

pytestmark = pytest.mark.slow


def _load_script():
    spec = importlib.util.spec_from_file_location("load", ROOT / "scripts" / "load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_concurrent_clients_each_get_their_own_answer(tmp_path, seed_settings, embedder, generator):
    load = _load_script()
    service = make_service(tmp_path, seed_settings, embedder, generator)
    with running(service) as url:
        result = load.run(
            url, clients=6, per_client=2, rounds=3, pid=os.getpid(), mode="extractive", timeout=300
        )
    assert result["errors"] == [] and result["mixed_up"] == []
    assert result["answered"] == result["asked"] == 36
    first, *_, last = result["server_rss_mb_by_round"][1:]
    assert last - first < 150, result["server_rss_mb_by_round"]  # no growth per round worth a leak
