"""Model cards survive: a loaded model keeps its card (``encoder.card``), and ``save_pretrained`` / ``push_to_hub``
write it back section for section, with only the usage line pointing at the new folder or repo."""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, hf_hub_download

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.card import LOCATION_PLACEHOLDER, ModelCard, render_model_card
from smooth_infomax.hub import DEFAULT_MODEL, folder_location, shipped_models

USAGE = re.compile(r"^encoder = SmoothInfoMaxEncoder\.from_pretrained\((.*)\)$", flags=re.M)


def _usage(markdown: str) -> tuple[object, dict[str, object]]:
    """The positional argument and keywords of the card's usage line, parsed as Python (never executed)."""
    call = ast.parse(f"f({USAGE.findall(markdown)[0]})", mode="eval").body
    assert isinstance(call, ast.Call)
    return ast.literal_eval(call.args[0]), {k.arg or "": ast.literal_eval(k.value) for k in call.keywords}


def _without_usage(markdown: str) -> str:
    return USAGE.sub("USAGE", markdown)


def _section(markdown: str, heading: str) -> str:
    """From ``## heading`` to the next ``## `` heading."""
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end]


def _training_data(markdown: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith("- Training data: "))


def _tiny_folder(tmp_path: Path, readme: str | None) -> Path:
    """A model folder of a random ``sim`` encoder whose README.md is ``readme`` (none when ``None``)."""
    torch.manual_seed(0)
    folder = SmoothInfoMaxEncoder.from_preset("sim").save_pretrained(tmp_path / "old")
    if readme is None:
        (folder / "README.md").unlink()
    else:
        (folder / "README.md").write_bytes(readme.encode())
    return folder


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_a_shipped_model_s_card_survives_save_and_reload(name, tmp_path):
    shipped = (shipped_models()[name] / "README.md").read_text(encoding="utf-8")
    model = SmoothInfoMaxEncoder.from_pretrained(name)
    assert model.card is not None and model.card.data.library_name == "smooth-infomax"
    model.save_pretrained(tmp_path / "copy")
    reloaded = SmoothInfoMaxEncoder.from_pretrained(tmp_path / "copy")
    saved = (tmp_path / "copy" / "README.md").read_text(encoding="utf-8")
    assert _training_data(saved) == _training_data(shipped)
    assert _section(saved, "Results") == _section(shipped, "Results")
    assert _without_usage(saved) == _without_usage(shipped)  # every other byte, metadata header included
    assert reloaded.card is not None and reloaded.card.data.to_dict() == model.card.data.to_dict()
    location, keywords = _usage(saved)
    assert location == (tmp_path / "copy").as_posix() and keywords == {}
    assert SmoothInfoMaxEncoder.from_pretrained(location).config == model.config  # the usage line loads the copy


def test_the_default_model_s_card_has_training_data_and_results():
    card = SmoothInfoMaxEncoder.from_pretrained(DEFAULT_MODEL).card
    assert card is not None and "| metric | value |" in _section(card.text, "Results")
    assert _training_data(card.text) != "- Training data: not recorded"


def test_a_copy_of_a_copy_points_at_the_latest_folder(tmp_path):
    SmoothInfoMaxEncoder.from_pretrained(DEFAULT_MODEL).save_pretrained(tmp_path / "first")
    SmoothInfoMaxEncoder.from_pretrained(tmp_path / "first").save_pretrained(tmp_path / "second")
    first = (tmp_path / "first" / "README.md").read_text()
    second = (tmp_path / "second" / "README.md").read_text()
    assert _usage(second)[0] == (tmp_path / "second").as_posix()
    assert _without_usage(first) == _without_usage(second) and len(USAGE.findall(second)) == 1


def test_metadata_edits_are_written_and_the_body_kept(tmp_path):
    model = SmoothInfoMaxEncoder.from_pretrained(DEFAULT_MODEL)
    assert model.card is not None
    model.card.data.license = "apache-2.0"
    model.card.data.datasets = ["org/recordings"]
    model.save_pretrained(tmp_path / "edited")
    reloaded = SmoothInfoMaxEncoder.from_pretrained(tmp_path / "edited").card
    assert reloaded is not None
    assert reloaded.data.license == "apache-2.0" and reloaded.data.datasets == ["org/recordings"]
    assert _without_usage(reloaded.text) == _without_usage(model.card.text)


def test_an_explicit_card_replaces_the_loaded_one(tmp_path):
    model = SmoothInfoMaxEncoder.from_pretrained(DEFAULT_MODEL)
    model.save_pretrained(tmp_path / "new", ModelCard(training_data="my own recordings"))
    saved = (tmp_path / "new" / "README.md").read_text()
    assert _training_data(saved) == "- Training data: my own recordings"
    assert "No evaluation recorded for this model." in saved and _usage(saved)[0] == (tmp_path / "new").as_posix()
    with pytest.warns(DeprecationWarning, match="model_card= is deprecated.*card="):
        model.save_pretrained(tmp_path / "old-keyword", model_card=ModelCard(training_data="old keyword"))
    assert "- Training data: old keyword" in (tmp_path / "old-keyword" / "README.md").read_text()


def test_a_card_from_an_earlier_version_loads_and_gets_its_location(tmp_path):
    old = render_model_card(SmoothInfoMaxEncoder.from_preset("sim").config, ModelCard(training_data="old data"))
    assert f'from_pretrained("{LOCATION_PLACEHOLDER}")' in old
    model = SmoothInfoMaxEncoder.from_pretrained(_tiny_folder(tmp_path, old))
    assert model.card is not None and LOCATION_PLACEHOLDER in model.card.text
    model.save_pretrained(tmp_path / "new")
    saved = (tmp_path / "new" / "README.md").read_text()
    assert LOCATION_PLACEHOLDER not in saved and _usage(saved)[0] == (tmp_path / "new").as_posix()
    assert _without_usage(saved) == _without_usage(old)


def test_a_folder_without_a_card_loads_and_saving_writes_a_new_one(tmp_path):
    model = SmoothInfoMaxEncoder.from_pretrained(_tiny_folder(tmp_path, None))
    assert model.card is None
    model.save_pretrained(tmp_path / "new")
    saved = (tmp_path / "new" / "README.md").read_text()
    assert saved.startswith("---\n") and _training_data(saved) == "- Training data: not recorded"
    assert _usage(saved)[0] == (tmp_path / "new").as_posix()


def test_a_hand_written_card_keeps_its_bytes_and_line_endings(tmp_path):
    readme = ("---\r\nlicense: mit\r\ntags:\r\n- speech\r\n---\r\n# Mine\r\n\r\nüñí text, no usage line.\r\n"
              "## Results\r\n\r\n| a | b |\r\n")
    model = SmoothInfoMaxEncoder.from_pretrained(_tiny_folder(tmp_path, readme))
    model.save_pretrained(tmp_path / "new")
    assert (tmp_path / "new" / "README.md").read_bytes() == readme.encode()


def test_a_card_without_metadata_gets_no_header(tmp_path):
    readme = "# Plain\n\n```python\nencoder = SmoothInfoMaxEncoder.from_pretrained(\"x\")\n```\n"
    model = SmoothInfoMaxEncoder.from_pretrained(_tiny_folder(tmp_path, readme))
    model.save_pretrained(tmp_path / "new")
    saved = (tmp_path / "new" / "README.md").read_text()
    assert saved == readme.replace('"x"', f'"{(tmp_path / "new").as_posix()}"')


def test_a_card_with_a_broken_header_warns_and_the_model_still_loads(tmp_path):
    folder = _tiny_folder(tmp_path, "---\nlicense: [mit\n---\n# Broken\n")
    with pytest.warns(UserWarning, match="README.md: model card not read"):
        model = SmoothInfoMaxEncoder.from_pretrained(folder)
    assert model.card is None


def test_the_usage_line_quotes_any_folder_name(tmp_path):
    folder = tmp_path / 'a "quoted" \\ folder'
    SmoothInfoMaxEncoder.from_pretrained(DEFAULT_MODEL).save_pretrained(folder)
    location, _ = _usage((folder / "README.md").read_text())
    assert location == folder.as_posix()
    assert SmoothInfoMaxEncoder.from_pretrained(location).card is not None


def test_a_shipped_model_s_own_folder_is_named_by_its_shipped_name(tmp_path):
    for name, folder in shipped_models().items():
        assert folder_location(folder) == name
    assert folder_location(tmp_path / "elsewhere") == (tmp_path / "elsewhere").as_posix()


@pytest.mark.slow
def test_push_writes_the_loaded_card_with_the_repo_and_revision(hub, tmp_path):
    repo_id = f"sim-team/card-{uuid.uuid4().hex[:8]}"
    model = SmoothInfoMaxEncoder.from_pretrained(DEFAULT_MODEL)
    assert model.card is not None
    url = model.push_to_hub(repo_id, revision="v1", private=True, commit_message="Card test")
    api = HfApi()
    assert repo_id in url and api.repo_info(repo_id).private
    assert [c.title for c in api.list_repo_commits(repo_id, revision="v1")][0] == "Card test"
    pushed = Path(hf_hub_download(repo_id, "README.md", revision="v1", cache_dir=tmp_path)).read_text()
    assert _usage(pushed) == (repo_id, {"revision": "v1"})
    assert _without_usage(pushed) == _without_usage((shipped_models()[DEFAULT_MODEL] / "README.md").read_text())
    loaded = SmoothInfoMaxEncoder.from_pretrained(repo_id, revision="v1", cache_dir=tmp_path / "cache")
    assert loaded.card is not None and loaded.card.content == pushed
    assert _section(loaded.card.text, "Results") == _section(model.card.text, "Results")
    loaded.push_to_hub(repo_id, card=ModelCard(training_data="replaced"))  # onto main, an explicit card
    replaced = Path(hf_hub_download(repo_id, "README.md", cache_dir=tmp_path)).read_text()
    assert _usage(replaced) == (repo_id, {}) and _training_data(replaced) == "- Training data: replaced"


def test_a_repo_without_a_card_loads_online_and_offline(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo_id = f"sim-team/no-card-{uuid.uuid4().hex[:8]}"
    folder = _tiny_folder(tmp_path, None)
    api = HfApi()
    api.create_repo(repo_id)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder))
    assert SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path / "cache").card is None
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path / "cache").card is None


def test_a_cache_from_before_cards_were_read_still_loads_offline(hub, tmp_path, monkeypatch):
    """Earlier versions downloaded only config.json and model.safetensors: the cache has no README.md."""
    from huggingface_hub import constants, snapshot_download

    repo_id = f"sim-team/old-cache-{uuid.uuid4().hex[:8]}"
    SmoothInfoMaxEncoder.from_pretrained(_tiny_folder(tmp_path, None)).push_to_hub(repo_id)
    snapshot_download(repo_id, allow_patterns=["config.json", "model.safetensors"], cache_dir=tmp_path / "cache")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path / "cache")
    assert offline.card is None and len(offline.revision or "") == 40
