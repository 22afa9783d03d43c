"""The Hub round trip through the real huggingface_hub client and the local Hub server (tests/hub_server.py), and
what a name that finds no model says: local folder? shipped name? Hub repo, offline or not, and the cache?"""

import os
import re
import subprocess
import sys
import uuid

import pytest
import torch
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import (
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.card import ModelCard
from smooth_infomax.hub import DEFAULT_MODEL, LoadError, shipped_models


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
    url = first.push_to_hub(repo_id, card=ModelCard(training_data="random init"))
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
    with pytest.raises(LoadError, match="HF_HUB_OFFLINE is set, so the Hub was not asked") as error:
        SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path / "empty-cache")
    assert isinstance(error.value.__cause__, LocalEntryNotFoundError)


def test_missing_repo(hub, tmp_path):
    with pytest.raises(LoadError) as error:
        SmoothInfoMaxEncoder.from_pretrained("sim-team/does-not-exist", cache_dir=tmp_path)
    assert isinstance(error.value.__cause__, RepositoryNotFoundError)
    assert str(error.value) == (
        f"sim-team/does-not-exist: not a local folder, not a model shipped in the package (shipped: "
        f"{', '.join(sorted(shipped_models()))}), and the Hub ({hub.endpoint}) has no repo 'sim-team/does-not-exist' "
        "that you can see: check the id; a private repo needs a token (token=, HF_TOKEN or `hf auth login`)")


def test_missing_revision(pushed, tmp_path):
    with pytest.raises(LoadError, match=r"^sim-team/\S+: the Hub repo has no branch, tag or commit 'no-such-branch'$") \
            as error:
        SmoothInfoMaxEncoder.from_pretrained(pushed[0], revision="no-such-branch", cache_dir=tmp_path)
    assert isinstance(error.value.__cause__, RevisionNotFoundError)


def test_repo_without_config_is_not_a_model_repo(hub, tmp_path):
    repo_id = f"sim-team/empty-{uuid.uuid4().hex[:8]}"
    HfApi().create_repo(repo_id)
    with pytest.raises(LoadError, match=r"@[0-9a-f]{40}: the repo has no config.json; it is not a smooth-infomax"):
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


# --- a name that finds no model ------------------------------------------------------------------------------------

def test_a_typo_of_a_shipped_name_suggests_it(hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder of a similar name here
    typo = DEFAULT_MODEL[:-1]  # "sim-mi"
    suggestion = re.escape(f"(did you mean '{DEFAULT_MODEL}'? shipped: ")
    with pytest.raises(LoadError, match=f"^{typo}: not a local folder, not a model shipped in the package "
                                        f"{suggestion}.*\\), and the Hub .* has no repo '{typo}'"):
        SmoothInfoMaxEncoder.from_pretrained(typo, cache_dir=tmp_path)


def test_a_retired_shipped_name_says_where_the_model_went(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LoadError, match=r"^sim-synth: not a local folder, not a model shipped in the package \(no "
                                        r"longer shipped .*from_pretrained\('training/models/sim-synth'\); shipped: "):
        SmoothInfoMaxEncoder.from_pretrained("sim-synth", cache_dir=tmp_path, local_files_only=True)
    assert "did you mean" not in _load_error_text("sim-synth", tmp_path)


def _load_error_text(name: str, cache_dir) -> str:
    with pytest.raises(LoadError) as raised:
        SmoothInfoMaxEncoder.from_pretrained(name, cache_dir=cache_dir, local_files_only=True)
    return str(raised.value)


def test_a_typo_of_a_local_folder_suggests_it(tmp_path, monkeypatch):
    _model(0).save_pretrained(tmp_path / "my-model")
    near = re.escape(f"(no such folder; did you mean '{tmp_path / 'my-model'}'?")
    with pytest.raises(LoadError, match=f"not a model folder {near}"):
        SmoothInfoMaxEncoder.from_pretrained(str(tmp_path / "my-modle"))
    monkeypatch.chdir(tmp_path)  # a bare name is tried as a folder here, then as a shipped name, then on the Hub
    with pytest.raises(LoadError, match="^org/my-modle: not a local folder, not a model") as error:
        SmoothInfoMaxEncoder.from_pretrained("org/my-modle", local_files_only=True)
    assert "did you mean the folder" not in str(error.value)  # org/ does not exist: nothing beside it to suggest
    with pytest.raises(LoadError, match="^my-modle: not a local folder \\(did you mean the folder 'my-model'\\?\\)"):
        SmoothInfoMaxEncoder.from_pretrained("my-modle", local_files_only=True)


def test_a_file_is_not_a_model_folder(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"not read")
    with pytest.raises(LoadError, match="model.safetensors: not a model folder \\(a file; expected a folder"):
        SmoothInfoMaxEncoder.from_pretrained(tmp_path / "model.safetensors")


def test_an_invalid_repo_id(hub, tmp_path):
    with pytest.raises(LoadError, match="^a/b/c: not a local folder, .* and not a valid Hub repo id") as error:
        SmoothInfoMaxEncoder.from_pretrained("a/b/c", cache_dir=tmp_path)
    assert isinstance(error.value.__cause__, HFValidationError)


def test_offline_says_what_the_cache_holds(pushed, tmp_path, monkeypatch):
    repo_id, first_commit, _, _ = pushed
    SmoothInfoMaxEncoder.from_pretrained(repo_id, revision="v0", cache_dir=tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cache = f"the cache ({tmp_path})"
    escaped = re.escape(cache)
    with pytest.raises(LoadError) as error:
        SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path)
    assert str(error.value) == (f"{repo_id}: HF_HUB_OFFLINE is set, so the Hub was not asked, and {cache} holds "
                                f"{repo_id!r} at v0 ({first_commit[:12]}), but not at 'main'; unset HF_HUB_OFFLINE "
                                "to download it")
    (tmp_path / f"models--{repo_id.replace('/', '--')}" / "snapshots" / first_commit / "model.safetensors").unlink()
    with pytest.raises(LoadError, match=f"holds '{repo_id}' at 'v0' \\(commit {first_commit[:12]}\\), but not its "
                                        "model.safetensors; unset HF_HUB_OFFLINE"):
        SmoothInfoMaxEncoder.from_pretrained(repo_id, revision="v0", cache_dir=tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(LoadError, match=f"^{repo_id}: local_files_only=True, so the Hub was not asked, and {escaped} "
                                        f"holds '{repo_id}' at v0 .* drop local_files_only=True to download it$"):
        SmoothInfoMaxEncoder.from_pretrained(repo_id, revision="0" * 40, cache_dir=tmp_path,
                                             local_files_only=True)


def test_an_unreachable_hub_is_named_with_the_cache_state(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(LoadError) as error:
        SmoothInfoMaxEncoder.from_pretrained("sim-team/anything", cache_dir=tmp_path)
    assert str(error.value).startswith("sim-team/anything: not a local folder, not a model shipped in the package")
    assert "and the Hub (http://127.0.0.1:9) could not be reached (ConnectError: " in str(error.value)
    assert str(error.value).endswith(f"the cache ({tmp_path}) holds nothing of 'sim-team/anything'")


@pytest.mark.slow
def test_hf_hub_offline_in_the_environment_names_itself_not_the_connection(hub, tmp_path):
    code = ("from smooth_infomax import SmoothInfoMaxEncoder\n"
            "from smooth_infomax.hub import LoadError\n"
            "try:\n    SmoothInfoMaxEncoder.from_pretrained('sim-team/never-pushed')\n"
            "except LoadError as error:\n    print(error)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "sim-team/never-pushed: not a local folder, not a model shipped in the package (shipped: "
        f"{', '.join(sorted(shipped_models()))}), and not in the Hub cache: HF_HUB_OFFLINE is set, so the Hub was not "
        f"asked, and the cache ({tmp_path / 'cache'}) holds nothing of 'sim-team/never-pushed'; unset HF_HUB_OFFLINE "
        "to download it")
    assert "connection" not in result.stdout
