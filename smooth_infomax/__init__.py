"""Smooth InfoMax: interpretable self-supervised speech features.

Importing this package has no side effects: it prints nothing, downloads nothing and loads no optional
dependency (Hub client, plotting, training code) until a function that needs it is called. Its modules log to
children of the ``smooth_infomax`` logger, which has only a ``NullHandler``: configure ``logging`` to see the lines
(the CLIs do, see ``smooth_infomax/logs.py``).
"""

import logging as _logging

from .batching import AudioBatch, FeatureStandardizer, collate_audio
from .config import PRESETS, ConvLayerConfig, EncoderConfig, LossConfig, ModuleConfig, preset
from .encoder import SmoothInfoMaxEncoder
from .outputs import Extraction, ModuleFeatures, ModuleTrainOutput

__version__ = "0.1.0"

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = [
    "PRESETS",
    "AudioBatch",
    "ConvLayerConfig",
    "EncoderConfig",
    "Extraction",
    "FeatureStandardizer",
    "LossConfig",
    "ModuleConfig",
    "ModuleFeatures",
    "ModuleTrainOutput",
    "SmoothInfoMaxEncoder",
    "collate_audio",
    "preset",
]
