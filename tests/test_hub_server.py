"""The local Hub server (tests/hub_server.py) against the real huggingface_hub client, no mocks."""

import json
import os
import threading
import uuid
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors.torch import load_file, save_file

from hub_server import LocalHub

# huggingface_hub's own LFS PUT passes a file object as `data=` (its httpx2 fork warns about that).
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
def api(hub) -> HfApi:
    return HfApi(endpoint=hub.endpoint)


@pytest.fixture
def repo_id(api) -> str:
    """A fresh, empty model repo."""
    repo = f"tester/hub-{uuid.uuid4().hex[:10]}"
    api.create_repo(repo)
    return repo


def _write_model(folder: Path, value: float, note: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"weight": torch.full((4, 3), value)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"note": note, "dim": 3}))
    return folder


def test_environment_points_at_local_hub(hub):
    assert constants.ENDPOINT == hub.endpoint == os.environ["HF_ENDPOINT"]
    assert constants.HF_HUB_DISABLE_XET
    assert hub.endpoint.startswith("http://127.0.0.1:")


def test_create_repo_and_exist_ok(api, hub):
    repo = f"tester/new-{uuid.uuid4().hex[:10]}"
    url = api.create_repo(repo)
    assert url.repo_id == repo and hub.repo_exists(repo)
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(repo)
    assert err.value.response.status_code == 409
    assert api.create_repo(repo, exist_ok=True).repo_id == repo
    assert api.repo_exists(repo) and not api.repo_exists(f"tester/missing-{uuid.uuid4().hex}")
    assert api.list_repo_files(repo) == [".gitattributes"]


def test_upload_folder_takes_lfs_path_and_downloads(api, hub, repo_id, tmp_path):
    folder = _write_model(tmp_path / "v1", 1.0, "first")
    info = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="v1")
    files = hub.files(repo_id)
    assert files["model.safetensors"]["lfs"] and not files["config.json"]["lfs"]
    assert info.oid == hub.refs(repo_id)["branches"]["main"]

    path = hf_hub_download(repo_id, "model.safetensors")
    assert torch.equal(load_file(path)["weight"], torch.full((4, 3), 1.0))
    assert Path(path).parts[-2] == info.oid  # snapshots/<commit>/model.safetensors
    assert json.loads(Path(hf_hub_download(repo_id, "config.json")).read_text())["note"] == "first"

    meta = get_hf_file_metadata(hf_hub_url(repo_id, "model.safetensors"))
    assert (meta.commit_hash, meta.etag) == (info.oid, files["model.safetensors"]["sha256"])
    assert meta.size == (folder / "model.safetensors").stat().st_size
    assert get_hf_file_metadata(hf_hub_url(repo_id, "config.json")).etag == files["config.json"]["oid"]

    tree = {f.path: f for f in api.list_repo_tree(repo_id, recursive=True)}
    assert tree["model.safetensors"].lfs.sha256 == files["model.safetensors"]["sha256"]
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "config.json", "model.safetensors"]
    paths = api.get_paths_info(repo_id, ["config.json", "nope.txt"])
    assert [p.path for p in paths] == ["config.json"]

    again = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="same")  # no-op
    assert again.oid == info.oid


def test_branches_tags_and_commit_ids(api, hub, repo_id, tmp_path):
    first = api.upload_folder(repo_id=repo_id, folder_path=_write_model(tmp_path / "v1", 1.0, "v1"),
                              commit_message="v1").oid
    api.create_tag(repo_id, tag="v1.0")
    api.create_branch(repo_id, branch="dev")
    with pytest.raises(HfHubHTTPError):
        api.create_branch(repo_id, branch="dev")
    api.create_branch(repo_id, branch="dev", exist_ok=True)
    second = api.upload_folder(repo_id=repo_id, folder_path=_write_model(tmp_path / "v2", 2.0, "v2"),
                               commit_message="v2").oid
    third = api.upload_file(path_or_fileobj=b'{"note": "dev"}', path_in_repo="config.json", repo_id=repo_id,
                            revision="dev", commit_message="dev config").oid
    assert len({first, second, third}) == 3

    def note(revision):
        return json.loads(Path(hf_hub_download(repo_id, "config.json", revision=revision)).read_text())["note"]

    assert note("main") == note(second) == "v2"
    assert note("v1.0") == note(first) == "v1"
    assert note("dev") == note(third) == "dev"
    weights = {rev: load_file(hf_hub_download(repo_id, "model.safetensors", revision=rev))["weight"][0, 0].item()
               for rev in ("main", "v1.0", "dev", first)}
    assert weights == {"main": 2.0, "v1.0": 1.0, "dev": 1.0, first: 1.0}

    refs = api.list_repo_refs(repo_id)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": second, "dev": third}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0": first}
    assert [c.commit_id for c in api.list_repo_commits(repo_id)][:2] == [second, first]
    assert api.model_info(repo_id, revision="v1.0").sha == first
    api.delete_branch(repo_id, branch="dev")
    assert "dev" not in hub.refs(repo_id)["branches"]


def test_pull_request_revision_is_url_encoded(api, repo_id):
    info = api.upload_file(path_or_fileobj=b"pr", path_in_repo="pr.txt", repo_id=repo_id, commit_message="pr",
                           create_pr=True)
    assert info.pr_revision == "refs/pr/1"
    path = hf_hub_download(repo_id, "pr.txt", revision="refs/pr/1")
    assert Path(path).read_bytes() == b"pr"
    assert api.model_info(repo_id, revision="refs/pr/1").sha == info.oid
    assert [p.ref for p in api.list_repo_refs(repo_id, include_pull_requests=True).pull_requests] == ["refs/pr/1"]
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo_id, "pr.txt")  # main is untouched


def test_snapshot_download_and_offline_reload(api, repo_id, tmp_path):
    info = api.upload_folder(repo_id=repo_id, folder_path=_write_model(tmp_path / "v1", 3.0, "snap"),
                             commit_message="v1")
    cache = tmp_path / "cache"
    snap = Path(snapshot_download(repo_id, cache_dir=cache))
    assert snap.name == info.oid
    assert sorted(p.name for p in snap.iterdir()) == [".gitattributes", "config.json", "model.safetensors"]
    ref = cache / f"models--{repo_id.replace('/', '--')}" / "refs" / "main"
    assert ref.read_text() == info.oid

    offline = Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True))
    assert offline == snap
    path = hf_hub_download(repo_id, "model.safetensors", cache_dir=cache, local_files_only=True)
    assert load_file(path)["weight"][0, 0].item() == 3.0
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(repo_id, "absent.bin", cache_dir=cache, local_files_only=True)


def test_offline_mode_reads_the_cache(api, repo_id, tmp_path, monkeypatch):
    info = api.upload_file(path_or_fileobj=b'{"a": 1}', path_in_repo="config.json", repo_id=repo_id,
                           commit_message="cfg")
    cache = tmp_path / "cache"
    online = hf_hub_download(repo_id, "config.json", cache_dir=cache)
    # HF_HUB_OFFLINE is read once at import: patch the constant that the env var sets.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hf_hub_download(repo_id, "config.json", cache_dir=cache) == online
    assert Path(snapshot_download(repo_id, cache_dir=cache)).name == info.oid
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(repo_id, ".gitattributes", cache_dir=cache)


def test_dataset_repo(api, tmp_path):
    repo = f"tester/data-{uuid.uuid4().hex[:10]}"
    api.create_repo(repo, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data/train.csv", repo_id=repo,
                    repo_type="dataset", commit_message="data")
    path = hf_hub_download(repo, "data/train.csv", repo_type="dataset", cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"a,b\n1,2\n"
    assert [f.path for f in api.list_repo_tree(repo, repo_type="dataset")] == ["data", ".gitattributes"]
    assert [f.path for f in api.list_repo_tree(repo, "data", repo_type="dataset")] == ["data/train.csv"]
    assert api.dataset_info(repo).siblings[1].rfilename == "data/train.csv"
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo, "data/train.csv", cache_dir=tmp_path)  # not a model repo


def test_missing_repo_file_and_revision_raise_hub_errors(api, repo_id):
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(f"tester/missing-{uuid.uuid4().hex}", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(f"tester/missing-{uuid.uuid4().hex}")
    with pytest.raises(RepositoryNotFoundError):  # anonymous: 401, as the Hub answers
        api.model_info(f"tester/missing-{uuid.uuid4().hex}", token=False)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "does-not-exist.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, ".gitattributes", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, ".gitattributes", revision="0" * 40)
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id, revision="no-such-branch")
    with pytest.raises(RepositoryNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=f"tester/missing-{uuid.uuid4().hex}")


def test_lfs_verify_rejects_wrong_content(hub, repo_id):
    import hashlib

    from huggingface_hub.utils import get_session

    base = f"{hub.endpoint}/{repo_id}.git/info/lfs/objects"
    good = b"payload"
    oid = hashlib.sha256(good).hexdigest()
    batch = get_session().post(f"{base}/batch", json={"operation": "upload", "objects": [{"oid": oid, "size": 7}]})
    actions = batch.json()["objects"][0]["actions"]
    assert get_session().put(actions["upload"]["href"], content=b"tampered").status_code == 200
    assert get_session().post(actions["verify"]["href"], json={"oid": oid, "size": 7}).status_code == 422
    assert get_session().put(actions["upload"]["href"], content=iter([b"pay", b"load"])).status_code == 200  # chunked
    assert get_session().post(actions["verify"]["href"], json={"oid": oid, "size": 7}).status_code == 200


def test_start_stop_leaves_no_threads(tmp_path):
    before = set(threading.enumerate())
    with LocalHub(tmp_path / "hub") as local:
        api = HfApi(endpoint=local.endpoint)
        api.create_repo("tester/tmp")
        assert api.list_repo_files("tester/tmp") == [".gitattributes"]
    leftover = [t for t in threading.enumerate() if t not in before and t.name.startswith("LocalHub")]
    assert leftover == []
