"""The output files of ``training.evaluate``: ``results.json``, the ``results.md`` table with its notes, and the
label maps."""

from __future__ import annotations

import json
from pathlib import Path

from smooth_infomax.analysis.probes import save_label_map
from training.data.librispeech import save_speaker_map
from training.deboer_probes import markdown as deboer_markdown


def _percent(entry: dict | None) -> str:
    return "–" if entry is None else f"{100 * entry['test']['accuracy']:.1f}"


def markdown_table(results: dict) -> str:
    """``results.md``: one row per model and feature set, test accuracies in percent, then chance rows."""
    corpus, chance = results["corpus"], results["chance"]
    lines = [
        "# Linear-probe results", "",
        (f"Corpus `{corpus['root']}`: {corpus['train_utterances']} train / {corpus['test_utterances']} test "
         f"utterances, {corpus['speakers']} speakers; {corpus['train_frames']:,} / {corpus['test_frames']:,} "
         f"phone frames; {corpus['train_crops']} / {corpus['test_crops']} speaker crops "
         f"({corpus['crops_per_utterance']} per utterance). Test accuracy over all test items, in %."), "",
        *_partial_labels_note(corpus),
        *_unseen_speakers_note(corpus),
        "| model | features | dim | phone acc. | speaker acc. |",
        "|---|---|---:|---:|---:|",
    ]
    for model in results["models"]:
        for name, entry in model["features"].items():
            lines.append(f"| {model['name']} | {name} | {entry.get('dim', '')} | {_percent(entry.get('phone'))} | "
                         f"{_percent(entry.get('speaker'))} |")
    phone_major, speaker_major = chance["phone"]["majority"], chance["speaker"]["majority"]
    lines += [
        (f"| majority class (train) | – | – | {100 * phone_major['accuracy']:.1f} | "
         f"{100 * speaker_major['accuracy']:.1f} |"),
        (f"| uniform chance | – | – | {100 * chance['phone']['uniform']:.1f} | "
         f"{100 * chance['speaker']['uniform']:.1f} |"),
        "",
        _timing_line(results),
        "",
    ]
    return "\n".join(lines)


def _partial_labels_note(corpus: dict) -> list[str]:
    """A sentence for a corpus whose phone labels cover only some utterances (nothing otherwise)."""
    if corpus.get("fully_labelled", True):
        return []
    phone = corpus["probes"]["phone"]
    return [(f"Phone labels cover {phone['train_utterances']} of the {corpus['train_utterances']} train and "
             f"{phone['test_utterances']} of the {corpus['test_utterances']} test utterances: the phone probes use "
             "those, the speaker probes all."), ""]


def _unseen_speakers_note(corpus: dict) -> list[str]:
    """A sentence for a test split whose speakers are all absent from the train split (nothing otherwise)."""
    if corpus.get("test_speakers_in_train", 1):
        return []
    return [("No speaker of the test split is in the train split: the phone probes are scored on unseen speakers, "
             "and the speaker probes cannot score above 0."), ""]


def _timing_line(results: dict) -> str:
    parts = [f"{m['name']}: extraction {m['timings']['extraction_total_s']:.0f} s "
             f"({m['timings']['times_realtime']:.1f}x real time), probes {m['timings']['probes_s']:.0f} s"
             for m in results["models"]]
    return (f"Timings ({results['timings']['torch_threads']} torch threads): " + "; ".join(parts)
            + f"; total {results['timings']['total_s']:.0f} s.")


def write_results(results: dict, out_dir: Path) -> None:
    """``results.json``, ``results.md``, ``speakers.json`` (``save_speaker_map`` format) and ``phones.json`` (the
    last two only with phone/speaker results; ``results.md`` ends with the de Boer tables when there are any)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown_table(results) if results.get("models") is not None else "# Linear-probe results\n\n"
    if results.get("deboer"):
        text += deboer_markdown(results["deboer"])
    (out_dir / "results.md").write_text(text)
    if "label_maps" not in results:
        return
    speakers = results["label_maps"]["speakers"]
    save_speaker_map({s: i for i, s in enumerate(speakers)}, out_dir / "speakers.json")
    save_label_map(results["label_maps"]["phones"], out_dir / "phones.json", task="phone")
