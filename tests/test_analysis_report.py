"""``sim-analyze``: the report for two tiny models on a generated LibriSpeech-layout corpus (every figure embedded,
every linked WAV present, the page rendered by headless Chromium), the decoder subcommands, the corpus reader, and
import hygiene (no matplotlib / scikit-learn on ``import smooth_infomax``)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from data_fixtures import skip_missing
from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.analysis.cli import main
from smooth_infomax.analysis.corpus import balanced_selection, load_clips, open_corpus
from test_cli_common import randomise_batch_norm, tiny_config

SPEAKERS = (11, 22, 33, 44)
FAST = ["--n-files", "12", "--n-test-files", "8", "--crop-samples", "3200", "--decoder-steps", "3",
        "--decoder-hidden", "4", "--ics-pairs", "6", "--ics-ks", "1,4,16", "--probe-epochs", "5", "--threads", "1"]


def write_corpus(root: Path) -> Path:
    """4 speakers x 4 utterances (1-1.5 s tones with noise); 3 train and 1 test utterance per speaker."""
    rng = np.random.default_rng(0)
    splits: dict[str, list[str]] = {"train_split": [], "test_split": []}
    for s, speaker in enumerate(SPEAKERS):
        for u in range(4):
            uid = f"{speaker}-7-{u}"
            n = 16000 + 160 * int(rng.integers(0, 50))
            t = np.arange(n) / 16000
            wave = 0.2 * np.sin(2 * np.pi * (120 + 60 * s) * t) + 0.02 * rng.standard_normal(n)
            path = root / "LibriSpeech" / "train-clean-100" / str(speaker) / "7" / f"{uid}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wave.astype(np.float32), 16000)
            splits["train_split" if u < 3 else "test_split"].append(uid)
    labels = root / "LibriSpeech100_labels_split"
    labels.mkdir(parents=True)
    for name, ids in splits.items():
        (labels / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return root


def save_tiny(folder: Path, head: str, seed: int) -> Path:
    config = tiny_config(channels=8)
    modules = tuple(replace(m, head=head) if m.head == "gaussian" else m for m in config.modules)
    config = replace(config, modules=modules)
    torch.manual_seed(seed)
    randomise_batch_norm(SmoothInfoMaxEncoder(config).eval(), seed).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    corpus = write_corpus(root / "corpus")
    return corpus, save_tiny(root / "sim", "gaussian", 0), save_tiny(root / "gim", "mean", 1)


@pytest.fixture(scope="module")
def report_dir(setup, tmp_path_factory):
    corpus, sim, gim = setup
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(main, ["report", f"SIM={sim}", f"GIM={gim}", str(corpus), str(out), "--force", *FAST],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_report_has_every_figure_and_the_table(report_dir):
    page = (report_dir / "report.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == page.count("<img") == len(list((report_dir / "figures").glob("*.png")))
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data in images)
    # shared sections (posterior, density, ICS, t-SNE) plus, per model, a decoder section (loss, reconstructions,
    # traversal, interpolation; SIM also draws from the prior)
    assert len(images) == 4 + 4 + 5
    report = json.loads((report_dir / "report.json").read_text())
    rows = {(r["model"], r["module"]): r for r in report["rows"]}
    assert set(rows) == {(m, n) for m in ("SIM", "GIM") for n in ("module 0", "module 1", "module 2", "GRU")}
    assert rows[("SIM", "module 0")]["kl_total"] > 0 and rows[("GIM", "module 0")]["kl_total"] is None
    assert rows[("SIM", "module 2")]["ics_mean_relative"] > 0 and rows[("SIM", "module 2")]["gaussian_tc"] is not None
    for key in ("probe_accuracy", "top4_share", "knn_accuracy", "kde_tc"):
        assert rows[("GIM", "GRU")][key] is not None, key
    assert page.count("<tr>") == 1 + len(rows) and "Gaussian TC" in page
    links = re.findall(r'<a href="([^"]+\.wav)"', page)
    assert links and all((report_dir / link).is_file() for link in links)
    assert (report_dir / "decoders" / "SIM" / "module-2" / "model.safetensors").is_file()


IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const ok = images.filter(i => i.complete && i.naturalWidth > 0).length;
  const mark = document.createElement("div"); mark.id = "image-check"; mark.textContent = ok + "/" + images.length;
  document.body.appendChild(mark);
});
</script>"""


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        skip_missing("needs the program chromium (or chromium-browser, google-chrome) on PATH: "
                     "apt-get install chromium")
    page = tmp_path / "checked.html"  # a copy with a script that counts decoded images once the page has loaded
    page.write_text((report_dir / "report.html").read_text().replace("</body>", IMAGE_CHECK + "</body>"))
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
               f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()]
    dom = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60).stdout
    found = re.search(r'<div id="image-check">(\d+)/(\d+)</div>', dom)
    assert found, dom[-500:]
    loaded, total = map(int, found.groups())
    assert total == 13 and loaded == total


@pytest.mark.slow
def test_decoder_subcommands(setup, tmp_path):
    corpus, sim, _ = setup
    runner = CliRunner()
    model = tmp_path / "model"
    shutil.copytree(sim, model)
    common = ["--n-files", "4", "--crop-samples", "3200", "--steps", "2", "--hidden", "4", "--threads", "1"]
    result = runner.invoke(main, ["train-decoder", str(model), str(corpus), str(model / "decoders" / "module-1"),
                                  "--module", "1", *common], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    audio = sorted(corpus.rglob("*.flac"))
    result = runner.invoke(main, ["traverse", str(model), str(audio[0]), str(tmp_path / "trav"), "--dims", "0,5",
                                  "--shift-sd", "-1,1", "--decoder-kind", "waveform"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "trav" / "traversal.png").is_file() and len(list((tmp_path / "trav").glob("*.wav"))) == 4
    result = runner.invoke(main, ["interpolate", str(model), str(audio[0]), str(audio[5]), str(tmp_path / "mix"),
                                  "--steps", "3", "--top-k", "2", "--decoder-kind", "waveform"],
                           catch_exceptions=False)
    assert result.exit_code == 0 and len(list((tmp_path / "mix").glob("*.wav"))) == 6
    result = runner.invoke(main, ["prior", str(model), str(tmp_path / "prior"), "-n", "3", "--seconds", "0.2",
                                  "--decoder-kind", "waveform"],
                           catch_exceptions=False)
    assert result.exit_code == 0 and len(list((tmp_path / "prior").glob("*.wav"))) == 3
    assert sf.info(str(next((tmp_path / "prior").glob("*.wav")))).frames == 3200  # 0.2 s of module-1 frames
    refused = runner.invoke(main, ["train-decoder", str(model), str(corpus), str(model / "decoders"), *common])
    assert refused.exit_code != 0 and "--force" in refused.output
    # a report picks up the decoder saved beside the model instead of training one
    result = runner.invoke(main, ["report", str(model), str(corpus), str(tmp_path / "report"), *FAST, "--modules", "1",
                                  "--decoder-modules", "1", "--no-tsne"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "report" / "report.json").read_text())["rows"]
    assert [(r["module"], r["decoder_source"]) for r in rows] == [("module 1", "given")]


def test_corpus_reader_balances_labels(setup):
    corpus = open_corpus(setup[0])
    assert corpus.kind == "librispeech" and len(corpus.items("train")) == 12
    clips = load_clips(corpus, "train", 8, 4000, seed=1)
    assert clips.audio.shape == (8, 4000) and sorted(clips.labels) == sorted([str(s) for s in SPEAKERS] * 2)
    assert balanced_selection(["a", "b", "c"], ["x", "x", "y"], 2) in ([0, 2], [1, 2])


@pytest.mark.slow
def test_importing_the_package_loads_no_plotting_or_sklearn():
    code = ("import sys, smooth_infomax, smooth_infomax.analysis.cli, smooth_infomax.analysis.report; "
            "bad = [m for m in ('matplotlib', 'sklearn') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sim_analyze_names_the_missing_extra_before_any_work(tmp_path):
    """Without matplotlib (hidden in sys.modules), every subcommand stops at once, naming the extra; --help works."""
    hide = ("import sys\n"
            "sys.modules['matplotlib'] = None  # as if not installed: import fails, find_spec gives None\n"
            "from smooth_infomax.analysis.cli import main\n"
            "main(sys.argv[1:])\n")
    clip = Path(__file__).resolve().parents[1] / "smooth_infomax" / "examples" / "flite_rms.flac"
    run = subprocess.run([sys.executable, "-c", hide, "traverse", "sim-mix", str(clip), str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "missing: matplotlib" in run.stderr and "pip install 'smooth-infomax[analysis]'" in run.stderr
    assert not (tmp_path / "out").exists()
    helped = subprocess.run([sys.executable, "-c", hide, "traverse", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert helped.returncode == 0 and "Usage" in helped.stdout
