"""The download-and-prepare command, against a tiny LibriSpeech-layout archive served from 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import socket

import pytest

import data_fixtures as fx
from training.data import download
from training.data.download import RESOURCES, PrepareError, prepare
from training.data.librispeech import CorpusPaths, CropDataset, UtteranceDataset, read_phone_labels, read_split


@pytest.fixture(scope="module")
def served_files(tone_corpus):
    """The files of the four resources, made from two utterances of the tone corpus."""
    corpus = CorpusPaths(tone_corpus)
    train, test = read_split(corpus.split("train_split"))[:1], read_split(corpus.split("test_split"))[:1]
    label_lines = [line for line in corpus.phone_labels.read_text().splitlines()
                   if line.split(" ", 1)[0] in train + test]
    return {"train-clean-100.tar.gz": fx.make_librispeech_tar(corpus.root, train + test),
            "train_split.txt": ("\n".join(train) + "\n").encode(),
            "test_split.txt": ("\n".join(test) + "\n").encode(),
            "converted_aligned_phones.zip": fx.make_zip("converted_aligned_phones.txt",
                                                        ("\n".join(label_lines) + "\n").encode(), "labels/")}


def _resources(files, **sha256):
    """The real resource list with checksums of the served test files (or those given)."""
    return tuple(dataclasses.replace(r, sha256=sha256.get(r.name, hashlib.sha256(files[r.filename]).hexdigest()))
                 for r in RESOURCES)


def _closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_prepare_downloads_verifies_and_unpacks(served_files, tmp_path):
    with fx.serve(served_files) as server:
        paths = prepare(tmp_path, _resources(served_files, phone_labels=None), server.url, quiet=True)
    train, test = read_split(paths.split("train_split")), read_split(paths.split("test_split"))
    labels = read_phone_labels(paths.phone_labels)
    assert sorted(labels) == sorted(train + test)
    assert CropDataset(paths.audio_dir, train)[0].audio.shape == (1, 20480)
    assert len(UtteranceDataset(paths.audio_dir, test, labels)[0].labels) > 0
    markers = sorted(p.name for p in (tmp_path / ".prepared").iterdir())
    assert markers == ["phone_labels.json", "test_split.json", "train-clean-100.json", "train_split.json"]
    assert not list(tmp_path.glob(".staging-*")) and not list((tmp_path / "downloads").glob("*.part"))
    with fx.serve({}) as server:  # everything is marked done: nothing is requested again
        prepare(tmp_path, _resources(served_files), server.url, quiet=True)
        assert server.requests == []


def test_partial_download_resumes(served_files, tmp_path):
    archive = served_files["train-clean-100.tar.gz"]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "train-clean-100.tar.gz.part").write_bytes(archive[:1000])
    with fx.serve(served_files) as server:
        prepare(tmp_path, _resources(served_files)[:1], server.url, quiet=True)
    assert server.requests == [("train-clean-100.tar.gz", "bytes=1000-")]
    assert (downloads / "train-clean-100.tar.gz").read_bytes() == archive
    assert (tmp_path / ".prepared" / "train-clean-100.json").exists()


def test_checksum_mismatch_is_refused_and_cleaned_up(served_files, tmp_path):
    good = served_files["train-clean-100.tar.gz"]
    corrupted = dict(served_files, **{"train-clean-100.tar.gz": good[:500] + bytes(100) + good[600:]})
    with fx.serve(corrupted) as server, pytest.raises(PrepareError, match="checksum mismatch") as error:
        prepare(tmp_path, _resources(served_files)[:1], server.url, quiet=True)
    assert "run again" in str(error.value)
    assert not (tmp_path / ".prepared").exists() and not (tmp_path / "LibriSpeech").exists()
    assert not list((tmp_path / "downloads").iterdir())


def test_damaged_archive_without_checksum_leaves_nothing_marked_done(served_files, tmp_path):
    good = served_files["train-clean-100.tar.gz"]
    truncated = dict(served_files, **{"train-clean-100.tar.gz": good[: len(good) // 2]})
    with fx.serve(truncated) as server, pytest.raises(PrepareError, match="damaged"):
        prepare(tmp_path, _resources(served_files, **{"train-clean-100": None})[:1], server.url, quiet=True)
    assert not (tmp_path / ".prepared").exists() and not (tmp_path / "LibriSpeech").exists()
    assert not list(tmp_path.glob(".staging-*")) and not list((tmp_path / "downloads").iterdir())


def test_web_page_instead_of_file_is_refused(served_files, tmp_path):
    with (fx.serve(served_files, {"train_split.txt": "text/html; charset=utf-8"}) as server,
          pytest.raises(PrepareError, match="web page")):
        prepare(tmp_path, _resources(served_files)[1:2], server.url, quiet=True)
    assert not (tmp_path / ".prepared").exists()


def test_offline_gives_a_clear_message(tmp_path, capsys):
    code = download.main([str(tmp_path), "--url-base", _closed_port_url(), "--only", "train_split", "--quiet"])
    message = capsys.readouterr().err
    assert code == 2 and "offline" in message and str(tmp_path / "downloads" / "train_split.txt") in message
    assert not (tmp_path / ".prepared").exists()


def test_files_placed_by_hand_are_used_offline(served_files, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for name, data in served_files.items():
        (downloads / name).write_bytes(data)
    paths = prepare(tmp_path, _resources(served_files), _closed_port_url(), quiet=True)
    assert read_split(paths.split("train_split")) and paths.audio_dir.is_dir()


def test_wrong_file_placed_by_hand_is_not_deleted(served_files, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "train-clean-100.tar.gz").write_bytes(b"not the archive")
    with pytest.raises(PrepareError, match="delete it"):  # checked against the real LibriSpeech checksum
        prepare(tmp_path, RESOURCES[:1], _closed_port_url(), quiet=True)
    assert (downloads / "train-clean-100.tar.gz").exists()
