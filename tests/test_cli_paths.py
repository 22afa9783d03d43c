"""Path mapping and containment: manifests with ``..`` and absolute paths, symlink loops, symlinks inside OUT_DIR.
Nothing is ever written outside OUT_DIR and no walk hangs."""

import os
from pathlib import Path, PurePosixPath

import pytest

from smooth_infomax.extraction.sources import (
    EXTERNAL_DIR,
    OutsideOutputDir,
    matches,
    output_path,
    source_key,
    walk_audio,
)
from test_cli_common import (
    no_hang_fixture,  # noqa: F401 (fixture)
    output_files,
    run_cli,
    tiny_model_fixture,  # noqa: F401 (fixtures)
    write_audio,
)


def snapshot(root: Path, exclude: Path) -> dict[str, int]:
    """Every file under ``root`` except those under ``exclude``: path -> mtime (symlinks not followed)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) != exclude]
        for name in files:
            path = Path(folder, name)
            found[str(path)] = path.lstat().st_mtime_ns
    return found


def test_source_keys_map_as_documented(tmp_path):
    root = tmp_path / "in"
    assert source_key(root, "a/./b/../c.wav") == PurePosixPath("a/c.wav")
    assert source_key(root, root / "x" / "y.wav") == PurePosixPath("x/y.wav")
    assert source_key(root, "../other/z.wav") == PurePosixPath(EXTERNAL_DIR, *(tmp_path / "other" / "z.wav").parts[1:])
    assert source_key(root, "/abs/../abs/q.wav") == PurePosixPath(EXTERNAL_DIR, "abs", "q.wav")
    with pytest.raises(ValueError):
        source_key(root, ".")
    assert output_path(tmp_path / "out", PurePosixPath("a/c.wav"), "npz") == tmp_path / "out" / "a" / "c.wav.npz"
    with pytest.raises(OutsideOutputDir):
        output_path(tmp_path / "out", PurePosixPath("../c.wav"), "npz")
    assert matches(PurePosixPath("a/b.WAV"), None) and not matches(PurePosixPath("a/b.txt"), None)
    assert matches(PurePosixPath("b.wav"), "**/*.wav") and matches(PurePosixPath("s/b.wav"), "s/*")


def test_manifest_with_dotdot_and_absolute_paths_stays_inside(tmp_path, tiny_model, no_hang):
    root, out = tmp_path / "corpus" / "in", tmp_path / "corpus" / "out"
    write_audio(root / "a.wav", 0.2, seed=1)
    write_audio(root / "sub" / "b.wav", 0.2, seed=2)
    outside = write_audio(tmp_path / "elsewhere" / "c.wav", 0.2, seed=3)
    deep_outside = write_audio(tmp_path / "x.wav", 0.2, seed=4)
    manifest = tmp_path / "list.txt"
    manifest.write_text("\n".join([
        "# comment", "a.wav", str(root / "a.wav"), "sub/../sub/b.wav\t3200", "../../elsewhere/c.wav",
        str(outside), "../../../" * 8 + str(deep_outside)[1:], '{"path": "sub/b.wav"}', "",
    ]))
    before = snapshot(tmp_path, out)
    result = run_cli([root, out, "--model", tiny_model, "--manifest", manifest, "--num-workers", 0])
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path, out) == before  # nothing written or touched outside OUT_DIR
    external = PurePosixPath(EXTERNAL_DIR, *tmp_path.parts[1:])
    assert sorted(output_files(out)) == sorted([
        "a.wav.safetensors", "sub/b.wav.safetensors", f"{external}/elsewhere/c.wav.safetensors",
        f"{external}/x.wav.safetensors"])


def test_symlink_loops_and_links_in_the_input_tree(tmp_path, tiny_model, no_hang):
    root, out = tmp_path / "in", tmp_path / "out"
    write_audio(root / "sub" / "a.wav", 0.2, seed=1)
    outside = write_audio(tmp_path / "outside" / "o.wav", 0.2, seed=2)
    os.symlink(root, root / "sub" / "loop")  # points at an ancestor
    os.symlink(".", root / "sub" / "self")  # points at itself
    os.symlink(tmp_path / "outside", root / "linked_dir")  # a folder outside IN_DIR
    os.symlink(outside, root / "linked_file.wav")
    walk = walk_audio(root)
    assert [str(s.key) for s in walk.sources] == ["linked_dir/o.wav", "linked_file.wav", "sub/a.wav"]
    assert any("symlink loop" in w for w in walk.warnings) and walk.unlistable == []
    before = snapshot(tmp_path, out)
    result = run_cli([root, out, "--model", tiny_model, "--num-workers", 0])
    assert result.exit_code == 0, result.output
    assert "symlink loop" in result.stderr
    assert snapshot(tmp_path, out) == before
    assert sorted(output_files(out)) == ["linked_dir/o.wav.safetensors", "linked_file.wav.safetensors",
                                         "sub/a.wav.safetensors"]


def test_symlink_inside_out_dir_pointing_outside_is_refused(tmp_path, tiny_model, no_hang):
    root, out, target = tmp_path / "in", tmp_path / "out", tmp_path / "target"
    write_audio(root / "sub" / "a.wav", 0.2, seed=1)
    write_audio(root / "sub" / "deeper" / "c.wav", 0.2, seed=3)
    write_audio(root / "b.wav", 0.2, seed=2)
    target.mkdir()
    out.mkdir()
    os.symlink(target, out / "sub")
    result = run_cli([root, out, "--model", tiny_model, "--num-workers", 0])
    assert result.exit_code == 1
    assert "FAILED sub/a.wav" in result.stderr and "FAILED sub/deeper/c.wav" in result.stderr
    assert "outside OUT_DIR" in result.stderr
    assert list(target.iterdir()) == []  # not even a folder was created there
    assert (out / "b.wav.safetensors").is_file()


def test_out_dir_inside_in_dir_and_glob(tmp_path, tiny_model):
    root = tmp_path / "in"
    write_audio(root / "keep" / "a.wav", 0.2, seed=1)
    write_audio(root / "skip" / "b.flac", 0.2, seed=2)
    args = [root, root / "features", "--model", tiny_model, "--num-workers", 0, "--format", "npy"]
    assert run_cli(args + ["--glob", "keep/*"]).exit_code == 0
    assert sorted(output_files(root / "features")) == ["keep/a.wav.features"]
    result = run_cli(args)
    assert "1 written, 1 up to date" in result.output  # OUT_DIR's own files are never taken as inputs
