"""One Hub persistence for encoders and decoders (``smooth_infomax.hub``), through the real huggingface_hub client and
the local Hub server (tests/hub_server.py): a revision is resolved to one commit, and the weights come from the
commit the config came from even when the branch moves in between."""

from __future__ import annotations

import uuid

import pytest
import torch
from huggingface_hub import HfApi

from hub_server import HubRequestHandler
from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.analysis.decoder import ModuleDecoder, decoder_config_for, default_subfolder
from smooth_infomax.hub import LoadError
from test_analysis_decoder import tiny_encoder


def _decoder(seed: int) -> ModuleDecoder:
    config = decoder_config_for(tiny_encoder().config, 2, 4)
    torch.manual_seed(seed)
    return ModuleDecoder(config).eval()


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def _move_branch_after_config(monkeypatch, hub, repo_id: str, config_path: str, branch: str, target: str) -> list:
    """Serve requests as usual, but right after ``config_path`` of ``repo_id`` is first served, point ``branch`` at
    ``target``: a loader that asks for the weights by branch name then gets the other commit's weights."""
    moved: list[str] = []
    serve = HubRequestHandler.h_resolve

    def serve_then_move(self, kind, ns, name, rev, path):
        serve(self, kind, ns, name, rev, path)
        if f"{ns}/{name}" == repo_id and path == config_path and not moved:
            hub.store.set_ref("model", repo_id, "branches", branch)  # delete, then recreate at the target
            hub.store.set_ref("model", repo_id, "branches", branch, target)
            moved.append(rev)

    monkeypatch.setattr(HubRequestHandler, "h_resolve", serve_then_move)
    return moved


@pytest.fixture
def two_decoders(hub):
    """A repo whose branch ``stable`` holds decoder 0 (commit ``first``) while ``main`` has moved on to decoder 1."""
    return _stable_branch_then_main_moves("decoders", _decoder(0), _decoder(1))


def _stable_branch_then_main_moves(prefix: str, first, second):
    """Push ``first``, point branch ``stable`` at its commit, then push ``second`` to main; returns
    ``repo_id, (first, its commit), (second, its commit)``."""
    repo_id = f"sim-team/{prefix}-{uuid.uuid4().hex[:8]}"
    api = HfApi()
    first.push_to_hub(repo_id)
    first_commit = api.list_repo_commits(repo_id)[0].commit_id
    api.create_branch(repo_id, branch="stable", revision=first_commit)
    second.push_to_hub(repo_id)
    second_commit = api.list_repo_commits(repo_id)[0].commit_id
    return repo_id, (first, first_commit), (second, second_commit)


def test_decoder_weights_come_from_the_commit_of_its_config(two_decoders, hub, monkeypatch, tmp_path):
    repo_id, (first, first_commit), (second, second_commit) = two_decoders
    subfolder = default_subfolder(2)
    moved = _move_branch_after_config(monkeypatch, hub, repo_id, f"{subfolder}/config.json", "stable", second_commit)
    loaded = ModuleDecoder.from_pretrained(repo_id, subfolder=subfolder, revision="stable", cache_dir=tmp_path)
    assert moved, "the branch was not moved: the test did not exercise the race"
    assert _same(loaded, first) and not _same(loaded, second)
    assert loaded.revision == first_commit and loaded.name_or_path == repo_id
    again = ModuleDecoder.from_pretrained(repo_id, subfolder=subfolder, revision="stable", cache_dir=tmp_path / "b")
    assert again.revision == second_commit and _same(again, second)  # the branch did move


def test_encoder_weights_come_from_the_commit_of_its_config(hub, monkeypatch, tmp_path):
    repo_id, (first, first_commit), (second, second_commit) = _stable_branch_then_main_moves(
        "encoders", tiny_encoder(0), tiny_encoder(1))
    moved = _move_branch_after_config(monkeypatch, hub, repo_id, "config.json", "stable", second_commit)
    loaded = SmoothInfoMaxEncoder.from_pretrained(repo_id, revision="stable", cache_dir=tmp_path)
    assert moved and loaded.revision == first_commit
    assert _same(loaded, first) and not _same(loaded, second)


def test_decoder_on_a_branch_and_offline_from_the_cache(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo_id = f"sim-team/decoder-branch-{uuid.uuid4().hex[:8]}"
    decoder = _decoder(3)
    tiny_encoder().push_to_hub(repo_id)
    decoder.push_to_hub(repo_id, revision="experiment")  # the branch is created, main untouched
    assert not any(f.startswith("decoders/") for f in HfApi().list_repo_files(repo_id))
    loaded = ModuleDecoder.from_pretrained(repo_id, subfolder=default_subfolder(2), revision="experiment",
                                           cache_dir=tmp_path)
    assert _same(loaded, decoder) and len(loaded.revision) == 40
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    offline = ModuleDecoder.from_pretrained(repo_id, subfolder=default_subfolder(2), revision="experiment",
                                            cache_dir=tmp_path, local_files_only=True)
    assert _same(offline, decoder) and offline.revision == loaded.revision


def test_decoder_without_safetensors_weights_is_refused(hub, tmp_path):
    repo_id = f"sim-team/decoder-pickled-{uuid.uuid4().hex[:8]}"
    api = HfApi()
    api.create_repo(repo_id)
    subfolder = default_subfolder(2)
    api.upload_file(path_or_fileobj=_decoder(0).config.to_json().encode(), path_in_repo=f"{subfolder}/config.json",
                    repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"\x80\x04not loaded", path_in_repo=f"{subfolder}/pytorch_model.bin",
                    repo_id=repo_id)
    with pytest.raises(LoadError, match="no decoders/module-2/model.safetensors.*never loaded"):
        ModuleDecoder.from_pretrained(repo_id, subfolder=subfolder, cache_dir=tmp_path)


def test_local_decoder_folder_errors_say_decoder(tmp_path):
    tiny_encoder().save_pretrained(tmp_path / "model")
    with pytest.raises(LoadError, match="no such decoder folder"):
        ModuleDecoder.from_pretrained(tmp_path / "model", subfolder=default_subfolder(2))
    (tmp_path / "model" / "decoders" / "module-2").mkdir(parents=True)
    with pytest.raises(LoadError, match="not a smooth-infomax decoder folder, missing config.json"):
        ModuleDecoder.from_pretrained(tmp_path / "model", subfolder=default_subfolder(2))
    _decoder(0).save_pretrained(tmp_path / "model" / "decoders" / "module-2")
    loaded = ModuleDecoder.from_pretrained(tmp_path / "model", subfolder=default_subfolder(2))
    assert loaded.revision is None and _same(loaded, _decoder(0))
    card = (tmp_path / "model" / "decoders" / "module-2" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: smooth-infomax" in card.split("---")[1]
