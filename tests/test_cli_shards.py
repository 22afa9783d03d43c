"""``--shard I/N`` and torchrun ranks: shards are disjoint and together equal one unsharded run."""

import pytest

from smooth_infomax.extraction.report import read_jsonl
from smooth_infomax.extraction.runner import resolve_shard
from smooth_infomax.extraction.settings import Shard
from test_cli_common import (
    assert_same_outputs,
    output_files,
    run_cli,
    tiny_model_fixture,  # noqa: F401 (fixtures)
    write_audio,
)


def make_corpus(folder, count=12):
    for i in range(count):
        write_audio(folder / f"spk{i % 3}" / f"utt{i}.wav", 0.15 + 0.05 * (i % 5), seed=i)


@pytest.mark.slow
def test_two_shards_together_equal_one_run(tmp_path, tiny_model):
    make_corpus(tmp_path / "in")
    base = [tmp_path / "in", "--model", tiny_model, "--num-workers", 0, "--what", "mean,sample"]
    assert run_cli([base[0], tmp_path / "all", *base[1:]]).exit_code == 0
    for index in range(2):
        result = run_cli([base[0], tmp_path / "sharded", *base[1:], "--shard", f"{index}/2"])
        assert result.exit_code == 0, result.output
    assert_same_outputs(tmp_path / "all", tmp_path / "sharded")
    shards = [{e["output"] for e in read_jsonl(tmp_path / "sharded" / f"manifest-shard{i}of2.jsonl")} for i in range(2)]
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert shards[0] | shards[1] == {e["output"] for e in read_jsonl(tmp_path / "all" / "manifest.jsonl")}


@pytest.mark.slow
def test_torchrun_ranks_take_their_own_shard(tmp_path, tiny_model):
    make_corpus(tmp_path / "in", count=8)
    base = [tmp_path / "in", "--model", tiny_model, "--num-workers", 0]
    for rank in range(2):
        env = {"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)}
        assert run_cli([base[0], tmp_path / "ranks", *base[1:], "--device", "cpu"], env=env).exit_code == 0
        assert run_cli([base[0], tmp_path / "shards", *base[1:], "--shard", f"{rank}/2"]).exit_code == 0
    assert_same_outputs(tmp_path / "ranks", tmp_path / "shards", atol=0)
    assert len(output_files(tmp_path / "ranks")) == 8
    assert resolve_shard(Shard(1, 3), {"RANK": "1", "WORLD_SIZE": "4"}) == Shard(5, 12)
    assert resolve_shard(None, {}) == Shard(0, 1)
