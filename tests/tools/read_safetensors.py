#!/usr/bin/env python3
"""Prints each tensor of a safetensors file: name, dtype, shape and values, in header order.

Uses only json, struct and numpy, so it checks spear's files against an independent reader.
usage: read_safetensors.py FILE
"""
import json
import struct
import sys

import numpy as np

NUMPY_DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}


def main(path):
    with open(path, "rb") as f:
        blob = f.read()
    (header_size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_size])
    data = blob[8 + header_size :]
    for name, info in header.items():
        if name == "__metadata__":
            print(name, json.dumps(info, sort_keys=True))
            continue
        begin, end = info["data_offsets"]
        values = np.frombuffer(data[begin:end], dtype=NUMPY_DTYPES[info["dtype"]])
        values = values.reshape(info["shape"])  # fails unless the byte count fits the shape
        print(name, info["dtype"], info["shape"], values.reshape(-1).tolist())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
