"""``sim-analyze``: the report for two tiny models on a generated LibriSpeech-layout corpus with phone labels (every
figure embedded, every linked WAV present, every dash and negative number explained, the page rendered by headless
Chromium at 1400 px without a horizontal scrollbar), the report with the shipped sim-mix decoders (nothing trained),
the decoder subcommands, the corpus reader, and import hygiene (no matplotlib / scikit-learn on
``import smooth_infomax``)."""

from __future__ import annotations

import base64
import html
import json
import logging
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
    """4 speakers x 4 utterances (1-1.5 s: a tone, then the tone an octave up under louder noise); 3 train and 1 test
    utterance per speaker; phone labels (class 1 "AA" on the first part, 29 "S" on the second) for all but speaker
    44's utterances."""
    rng = np.random.default_rng(0)
    splits: dict[str, list[str]] = {"train_split": [], "test_split": []}
    phones = []
    for s, speaker in enumerate(SPEAKERS):
        for u in range(4):
            uid = f"{speaker}-7-{u}"
            n = 16000 + 160 * int(rng.integers(0, 50))
            t, cut = np.arange(n) / 16000, n // 320 * 160
            f0 = np.where(np.arange(n) < cut, 120 + 60 * s, 240 + 120 * s)
            noise = np.where(np.arange(n) < cut, 0.02, 0.1) * rng.standard_normal(n)
            wave = 0.2 * np.sin(2 * np.pi * f0 * t) + noise
            path = root / "LibriSpeech" / "train-clean-100" / str(speaker) / "7" / f"{uid}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wave.astype(np.float32), 16000)
            splits["train_split" if u < 3 else "test_split"].append(uid)
            if speaker != SPEAKERS[-1]:
                phones.append(" ".join([uid] + ["1"] * (cut // 160) + ["29"] * (n // 160 - cut // 160)))
    labels = root / "LibriSpeech100_labels_split"
    labels.mkdir(parents=True)
    for name, ids in splits.items():
        (labels / f"{name}.txt").write_text("\n".join(ids) + "\n")
    (labels / "converted_aligned_phones.txt").write_text("\n".join(phones) + "\n")
    (root / "phones.txt").write_text("0 SIL SIL\n1 AA AA\n29 S S\n")
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
    # shared sections (posterior, density, ICS, t-SNE); per model a decoder section (loss, reconstructions,
    # traversal, interpolation; SIM also draws from the prior) and the example clip (reconstructions, traversal and
    # what the traversal changes)
    assert len(images) == 4 + 4 + 5 + 2 * 3
    report = json.loads((report_dir / "report.json").read_text())
    rows = {(r["model"], r["module"]): r for r in report["rows"]}
    assert set(rows) == {(m, n) for m in ("SIM", "GIM") for n in ("module 0", "module 1", "module 2", "GRU")}
    assert rows[("SIM", "module 0")]["kl_total"] > 0 and rows[("GIM", "module 0")]["kl_total"] is None
    assert rows[("SIM", "module 2")]["ics_mean_relative"] > 0 and rows[("SIM", "module 2")]["gaussian_tc"] is not None
    assert rows[("SIM", "module 2")]["decoder_source"].startswith("trained here")
    for key in ("probe_accuracy", "top4_share", "knn_accuracy", "kde_tc", "phone_accuracy"):
        assert rows[("GIM", "GRU")][key] is not None, key
    assert page.count("<tr>") == 2 * (1 + len(rows)) and "Gaussian TC" in page
    links = re.findall(r'<a href="([^"]+\.wav)"', page)
    assert links and all((report_dir / link).is_file() for link in links)
    assert (report_dir / "decoders" / "SIM" / "module-2" / "model.safetensors").is_file()
    # the example: the longest test utterance with phone labels, named on the page; a speaker and a phone row
    example = report["example"]["SIM"]
    assert example["item"] in {f"{s}-7-3" for s in SPEAKERS[:-1]} and f"Clip {example['item']}" in page
    assert [(t["module"], t["probe"]) for t in example["traversal"]] == [(2, "speaker"), (2, "phone")]
    assert {t["class"] for t in example["traversal"] if t["probe"] == "phone"} <= {"AA", "S"}


def test_every_dash_and_negative_number_is_explained(report_dir):
    page = (report_dir / "report.html").read_text()
    tables = "".join(re.findall(r"<table>.*?</table>", page, flags=re.S))
    notes = dict(re.findall(r'<li id="note-(\d+)" value="\d+">([^<]+)</li>', page))
    dashes = re.findall(r"<td>&ndash;<sup><a href=\"#note-(\d+)\"", tables)
    negatives = re.findall(r"<td>-[0-9.]+<sup><a href=\"#note-(\d+)\"", tables)
    cells = re.findall(r"<td>([^<]*)", tables)
    assert dashes and all(notes[n].startswith("Dash: ") for n in dashes)
    assert all(notes[n].startswith("Negative: ") for n in negatives)
    assert sum(c == "&ndash;" for c in cells) == len(dashes)  # no dash without its note
    assert sum(c.startswith("-") for c in cells) == len(negatives)  # no negative number without its note
    assert "not computed" not in " ".join(notes.values())  # every dash has a specific reason


def test_table_marks_dashes_and_negative_numbers():
    from smooth_infomax.analysis.report_html import MISSING, render_tables

    rows = [{"model": "A", "module": "module 0", "dim": 4, "gaussian_tc": -0.01, "kl_total": None,
             MISSING: {"kl_total": "not Gaussian"}},
            {"model": "A", "module": "GRU", "dim": 4, "gaussian_tc": 0.5, "kl_total": 1.0}]
    page = render_tables(rows)
    assert '&ndash;<sup><a href="#note-1" title="Dash: not Gaussian">1</a>' in page  # notes in order of use
    assert '-0.01<sup><a href="#note-2" title="Negative: Gaussian TC is bias-corrected' in page
    assert re.findall(r'<li id="note-1" value="1">([^<]+)</li>', page) == [html.escape("Dash: not Gaussian")]


PAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const ok = images.filter(i => i.complete && i.naturalWidth >= 100 && i.naturalHeight >= 50).length;
  const scrolling = [...document.querySelectorAll("*")].filter(e => {
    const x = getComputedStyle(e).overflowX;
    return (x === "auto" || x === "scroll") && e.scrollWidth > e.clientWidth;
  }).length;
  const root = document.documentElement;
  const mark = document.createElement("div"); mark.id = "page-check";
  mark.textContent = [ok, images.length, root.scrollWidth, window.innerWidth, scrolling].join(" ");
  document.body.appendChild(mark);
});
</script>"""
"""Appended to a page: once loaded, it writes ``<div id="page-check">`` with the images that decoded to a real
picture (at least 100 x 50 px: no broken-image or 1-pixel placeholder), all images, the document's scroll width, the
window's inner width and the number of elements that scroll sideways themselves."""


def browser_or_skip() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        skip_missing("needs the program chromium (or chromium-browser, google-chrome) on PATH: "
                     "apt-get install chromium")
    return str(browser)


def check_page(page: Path, work: Path, width: int = 1400) -> tuple[int, int, int, int, int]:
    """Render a copy of ``page`` (with :data:`PAGE_CHECK`) in headless Chromium ``width`` px wide; returns the
    script's numbers."""
    copy = page.with_name("checked-" + page.name)
    copy.write_text(page.read_text().replace("</body>", PAGE_CHECK + "</body>"))
    command = [browser_or_skip(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
               f"--window-size={width},900", f"--user-data-dir={work / 'profile'}", "--dump-dom", copy.as_uri()]
    dom = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<div id="page-check">(\d+) (\d+) (\d+) (\d+) (\d+)</div>', dom)
    assert found, dom[-500:]
    ok, total, scroll_width, inner_width, scrolling = map(int, found.groups())
    return ok, total, scroll_width, inner_width, scrolling


@pytest.mark.slow
def test_report_renders_in_headless_chromium_without_sideways_scrolling(report_dir, tmp_path):
    ok, total, scroll_width, inner_width, scrolling = check_page(report_dir / "report.html", tmp_path)
    assert total == 19 and ok == total  # every picture decoded, none a placeholder
    assert inner_width == 1400 and scroll_width <= inner_width and scrolling == 0
    shot = tmp_path / "top.png"
    subprocess.run([browser_or_skip(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    (report_dir / "report.html").as_uri()], check=False, capture_output=True, timeout=120)
    assert shot.read_bytes()[16:24] == (1400).to_bytes(4, "big") + (1000).to_bytes(4, "big")


@pytest.mark.slow
def test_page_check_sees_sideways_scrolling_and_broken_images(tmp_path):
    """The check above can fail: a too wide block, a wide table in a scrolling box and a broken image are seen."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><div style="width:2000px">wide</div>'
                    '<div style="overflow-x:auto"><table style="width:1800px"><tr><td>x</td></tr></table></div>'
                    '<img src="missing.png"></body></html>')
    ok, total, scroll_width, inner_width, scrolling = check_page(page, tmp_path)
    assert (ok, total) == (0, 1) and scroll_width > inner_width == 1400 and scrolling == 1


@pytest.mark.slow
def test_report_uses_the_shipped_decoders_and_logs_progress(setup, tmp_path, caplog):
    """sim-mix ships log-mel decoders for modules 0-2: the report trains none, decodes the example with each and
    traverses the speaker and phone probes' top dimension of every module."""
    from smooth_infomax.analysis.corpus import open_corpus
    from smooth_infomax.analysis.report import ReportSettings, build_report, cnn_modules
    from smooth_infomax.analysis.report_decoders import find_report_decoders

    encoder = SmoothInfoMaxEncoder.from_pretrained("sim-mix")
    decoders = {"sim-mix": find_report_decoders("sim-mix", "sim-mix", encoder, cnn_modules(encoder))}
    settings = ReportSettings(n_files=12, n_test_files=8, crop_samples=3200, modules=(0, 1, 2), ics_pairs=6,
                              ics_ks=(1, 4, 16), probe_epochs=5, phone_probe_epochs=3, tsne=False, example_seconds=1.0)
    caplog.set_level(logging.INFO, logger="smooth_infomax.analysis")
    report = build_report({"sim-mix": encoder}, open_corpus(setup[0]), tmp_path, settings, decoders)
    assert not (tmp_path / "decoders").exists()  # nothing trained
    row = next(r for r in report["rows"] if r["module"] == "module 2")
    assert row["decoder_source"].startswith("the model's own decoders/module-2/")
    example = report["example"]["sim-mix"]
    assert {m: e["decoder"] for m, e in example["modules"].items()} == {
        m: f"the model's own decoders/module-{m}/logmel" for m in (0, 1, 2)}
    assert [(t["module"], t["probe"]) for t in example["traversal"]] == [
        (m, p) for m in (0, 1, 2) for p in ("speaker", "phone")]
    logged = [r.getMessage() for r in caplog.records]
    assert "sim-mix: features ..." in logged and any(re.match(r"sim-mix: example clip: done in [0-9.]+ s$", m)
                                                     for m in logged)


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
    assert [(r["module"], r["decoder_source"]) for r in rows] == [("module 1", "the model's own decoders/module-1")]
    assert not (tmp_path / "report" / "decoders").exists()


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
