"""Speech data for training and probing: a synthetic LibriSpeech-style corpus, loaders, downloads.

Submodules:

* :mod:`training.data.synth` -- ``python -m training.data.synth OUT`` generates a labelled corpus offline.
* :mod:`training.data.librispeech` -- crop and utterance datasets for LibriSpeech-layout corpora.
* :mod:`training.data.deboer` -- the Artificial Speech Dataset (de Boer) of the SIM paper.
* :mod:`training.data.download` -- ``python -m training.data.download OUT`` fetches LibriSpeech and the CPC split.
* :mod:`training.data.phones` -- the 41-class phone table and engine phone mappings.
"""
