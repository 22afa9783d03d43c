"""Analysis tools for trained encoders: linear probes (phones, speakers, syllables) and their feature sources.

Nothing is imported until a name is used, so ``import smooth_infomax.analysis`` stays cheap:

    from smooth_infomax.analysis import EncoderFeatures, collect_frame_features, run_probe, PHONE_PROBE

See :mod:`smooth_infomax.analysis.probes` and :mod:`smooth_infomax.analysis.features`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "features": ("EncoderFeatures", "FeatureSource", "LABEL_HOP_SAMPLES", "LateFeatures", "MfccFeatures",
                 "masked_time_mean", "module_feature_names", "pool_to_label_rate", "shift_frames", "stack_context"),
    "probes": ("Accuracy", "LabelledFeatures", "LinearProbe", "PHONE_PROBE", "ProbeConfig", "ProbeResult",
               "SPEAKER_PROBE", "SYLLABLE_PROBE", "accuracy", "align_labels", "collect_frame_features",
               "collect_pooled_features", "evaluate_probe", "feature_statistics", "fit_probe", "load_label_map",
               "load_probe", "majority_baseline", "paired_bootstrap", "predict", "run_probe", "save_label_map",
               "save_probe"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "LABEL_HOP_SAMPLES",
    "PHONE_PROBE",
    "SPEAKER_PROBE",
    "SYLLABLE_PROBE",
    "Accuracy",
    "EncoderFeatures",
    "FeatureSource",
    "LabelledFeatures",
    "LateFeatures",
    "LinearProbe",
    "MfccFeatures",
    "ProbeConfig",
    "ProbeResult",
    "accuracy",
    "align_labels",
    "collect_frame_features",
    "collect_pooled_features",
    "evaluate_probe",
    "feature_statistics",
    "fit_probe",
    "load_label_map",
    "load_probe",
    "majority_baseline",
    "masked_time_mean",
    "module_feature_names",
    "paired_bootstrap",
    "pool_to_label_rate",
    "predict",
    "run_probe",
    "save_label_map",
    "save_probe",
    "shift_frames",
    "stack_context",
]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
