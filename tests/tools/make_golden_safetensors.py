#!/usr/bin/env python3
"""Writes tests/data/safetensors/golden.safetensors with json, struct and numpy only.

The file is built independently of spear, so test_safetensors can check that spear reads what
other writers produce. Like the Hugging Face writer, it lists the tensors in the header sorted by
name (not in data order) and pads the header with spaces to a multiple of 8 bytes.
usage: make_golden_safetensors.py [OUT]
"""
import json
import os
import struct
import sys

import numpy as np

# In data order.
TENSORS = [
    ("weight", np.array([[0.1, -2.5, 3.0], [1e-30, -0.0, 65504.0]], dtype="<f4")),
    ("ids", np.array([-(2**53) - 1, 0, 2**62, -1], dtype="<i8")),
    ("scale", np.array(np.pi, dtype="<f8")),  # rank 0
    ("empty", np.zeros((0, 3), dtype="<f4")),
]
DTYPE_TAGS = {"float32": "F32", "float64": "F64", "int64": "I64"}


def main(out):
    header = {"__metadata__": {"format": "pt", "writer": "numpy"}}
    offset = 0
    for name, array in TENSORS:
        tag = DTYPE_TAGS[array.dtype.name]
        header[name] = {"dtype": tag, "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, array in TENSORS:
            f.write(array.tobytes())


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(here, "..", "data", "safetensors", "golden.safetensors"))
