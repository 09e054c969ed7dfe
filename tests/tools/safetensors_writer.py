"""Writes safetensors files with json, struct and numpy only: the fixture scripts' one writer.

write_safetensors(path, [(name, array), ...], metadata) keeps the given order, pads the header
with spaces to a multiple of 8 bytes, and stores arrays little-endian, row-major.
"""
import json
import os
import struct

import numpy as np

TAGS = {"float32": "F32", "float64": "F64", "int64": "I64"}


def write_safetensors(path, tensors, metadata=None):
    header = {"__metadata__": dict(metadata)} if metadata else {}
    offset, blobs = 0, []
    for name, array in tensors:
        array = np.array(array, order="C")  # keeps 0-d arrays 0-d
        header[name] = {"dtype": TAGS[array.dtype.name], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
        blobs.append(array.astype(array.dtype.newbyteorder("<")).tobytes())
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
