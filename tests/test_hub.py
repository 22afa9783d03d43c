"""The Hub round trip through the real huggingface_hub client and the local Hub server (tests/hub_server.py)."""

import uuid

import pytest
import torch
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.card import ModelCard
from smooth_infomax.hub import LoadError


def _model(seed):
    torch.manual_seed(seed)
    return SmoothInfoMaxEncoder.from_preset("sim").eval()


def _features(model, wav):
    return model.extract(wav, modules=[2])[2].mean


@pytest.fixture(scope="module")
def pushed(hub):
    """A repo with two commits on main (models seeded 0 then 1) and a branch `v0` at the first commit."""
    repo_id = f"sim-team/sim-{uuid.uuid4().hex[:8]}"
    api = HfApi()
    first, second = _model(0), _model(1)
    url = first.push_to_hub(repo_id, model_card=ModelCard(training_data="random init"))
    assert repo_id in url
    first_commit = api.list_repo_commits(repo_id)[0].commit_id
    api.create_branch(repo_id, branch="v0", revision=first_commit)
    second.push_to_hub(repo_id, commit_message="second model")
    files = sorted(api.list_repo_files(repo_id))
    assert files == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    return repo_id, first_commit, first, second


def test_download_by_repo_id_gets_the_latest(pushed, tmp_path):
    repo_id, _, _, second = pushed
    loaded = SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path)
    wav = torch.randn(4000)
    assert torch.equal(_features(loaded, wav), _features(second, wav))
    assert loaded.name_or_path == repo_id and len(loaded.revision) == 40


@pytest.mark.slow
def test_download_by_branch_and_by_commit(pushed, tmp_path):
    repo_id, first_commit, first, _ = pushed
    wav = torch.randn(4000)
    by_branch = SmoothInfoMaxEncoder.from_pretrained(repo_id, revision="v0", cache_dir=tmp_path)
    by_commit = SmoothInfoMaxEncoder.from_pretrained(repo_id, revision=first_commit, cache_dir=tmp_path)
    assert by_branch.revision == by_commit.revision == first_commit
    assert torch.equal(_features(by_branch, wav), _features(first, wav))
    assert torch.equal(_features(by_commit, wav), _features(first, wav))


@pytest.mark.slow
def test_offline_reload_from_the_cache(pushed, tmp_path, monkeypatch, hub):
    repo_id, first_commit, first, second = pushed
    SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path)
    SmoothInfoMaxEncoder.from_pretrained(repo_id, revision=first_commit, cache_dir=tmp_path)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    wav = torch.randn(4000)
    offline = SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path, local_files_only=True)
    assert torch.equal(_features(offline, wav), _features(second, wav))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    pinned = SmoothInfoMaxEncoder.from_pretrained(repo_id, revision=first_commit, cache_dir=tmp_path)
    assert torch.equal(_features(pinned, wav), _features(first, wav))
    with pytest.raises(LocalEntryNotFoundError):
        SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path / "empty-cache")


def test_missing_repo(hub, tmp_path):
    with pytest.raises(RepositoryNotFoundError):
        SmoothInfoMaxEncoder.from_pretrained("sim-team/does-not-exist", cache_dir=tmp_path)


def test_missing_revision(pushed, tmp_path):
    with pytest.raises(RevisionNotFoundError):
        SmoothInfoMaxEncoder.from_pretrained(pushed[0], revision="no-such-branch", cache_dir=tmp_path)


def test_repo_without_config_is_missing_a_file(hub, tmp_path):
    repo_id = f"sim-team/empty-{uuid.uuid4().hex[:8]}"
    HfApi().create_repo(repo_id)
    with pytest.raises(EntryNotFoundError):
        SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path)


def test_repo_with_only_a_pickle_is_refused(hub, tmp_path):
    repo_id = f"sim-team/pickled-{uuid.uuid4().hex[:8]}"
    api = HfApi()
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=_model(0).config.to_json().encode(), path_in_repo="config.json", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"\x80\x04not loaded", path_in_repo="pytorch_model.bin", repo_id=repo_id)
    with pytest.raises(LoadError, match="no model.safetensors.*never loaded"):
        SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path)


@pytest.mark.slow
def test_push_to_a_branch(hub, tmp_path):
    repo_id = f"sim-team/branch-{uuid.uuid4().hex[:8]}"
    model = _model(2)
    model.push_to_hub(repo_id, revision="experiment")
    assert "config.json" not in HfApi().list_repo_files(repo_id)  # main untouched
    loaded = SmoothInfoMaxEncoder.from_pretrained(repo_id, revision="experiment", cache_dir=tmp_path)
    wav = torch.randn(3000)
    assert torch.equal(_features(loaded, wav), _features(model, wav))
