"""The streaming safetensors writer: rows written piece by piece, read back by the safetensors library itself."""

import numpy as np
from safetensors.numpy import load_file

from smooth_infomax.extraction.formats import SafetensorsStream

# Tensor shapes whose bytes start and end off 4 KiB pages, one smaller than a page, and one row spanning pages.
SPECS = {
    "module0.mean": ((3001, 7), np.dtype("<f4")),
    "module0.logvar": ((5, 3), np.dtype("<f2")),
    "module1.mean": ((777, 1500), np.dtype("<f4")),
    "module2.mean": ((1, 1), np.dtype("<f2")),
}


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {key: rng.standard_normal(shape).astype(dtype) for key, (shape, dtype) in SPECS.items()}


def write_in_pieces(path, values, seed: int = 1) -> SafetensorsStream:
    """Each tensor in random-sized runs of rows, the tensors interleaved (as chunked extraction writes them)."""
    rng = np.random.default_rng(seed)
    stream = SafetensorsStream(path, SPECS, {"format": "test"})
    cursors = dict.fromkeys(values, 0)
    while any(cursors[k] < len(v) for k, v in values.items()):
        for key, value in values.items():
            start = cursors[key]
            stop = min(len(value), start + int(rng.integers(1, 400)))
            if start < stop:
                stream.write_rows(key, start, value[start:stop])
                cursors[key] = stop
    return stream


def test_rows_written_in_pieces_read_back_exactly(tmp_path):
    values = arrays()
    path = tmp_path / "features.safetensors"
    stream = write_in_pieces(path, values)
    stream.close()
    loaded = load_file(path)
    assert loaded.keys() == values.keys()
    for key, value in values.items():
        np.testing.assert_array_equal(loaded[key], value)


def test_out_of_order_and_rewritten_rows_still_land(tmp_path):
    values = arrays(seed=3)
    path = tmp_path / "features.safetensors"
    stream = SafetensorsStream(path, SPECS, {})
    big = values["module1.mean"]
    stream.write_rows("module1.mean", 500, big[500:])  # the end first
    stream.write_rows("module1.mean", 0, np.zeros_like(big[:500]))
    stream.write_rows("module1.mean", 0, big[:500])  # then rewritten
    for key in ("module0.mean", "module0.logvar", "module2.mean"):
        stream.write_rows(key, 0, values[key])
    stream.close()
    loaded = load_file(path)
    for key, value in values.items():
        np.testing.assert_array_equal(loaded[key], value)
