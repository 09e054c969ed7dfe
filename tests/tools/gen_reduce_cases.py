#!/usr/bin/python3
"""Writes tests/data/reduce_cases.json: expected results of the reduce, softmax and scan kernels,
computed with numpy in float64.

Each case names an input, an op and its arguments. test_reduce.cpp rebuilds the same inputs and
views (see INPUTS) and runs every case, the float ones in both f32 and f64. The float inputs are
exactly representable in f32, so one float64 expectation serves both dtypes.

Run from the repository root: tests/tools/gen_reduce_cases.py
"""
import json
import pathlib

import numpy as np

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 4)).astype(np.float32).astype(np.float64)
col = rng.standard_normal((3, 1)).astype(np.float32).astype(np.float64)
ties = rng.integers(-2, 3, size=(2, 3, 4))  # few distinct values: argmax must pick the first

# name -> array; the comment is the spear expression test_reduce.cpp builds for it.
INPUTS = {
    "x": x,
    "x_permuted": x.transpose(2, 0, 1),  # permute(x, {2, 0, 1})
    "x_sliced": x[:, ::2, 1:],  # slice(slice(x, 1, 0, 3, 2), 2, 1, 4)
    "col_expanded": np.broadcast_to(col, (2, 3, 4)),  # expand(col, {2, 3, 4})
    "ties": ties,
    "ties_permuted": ties.transpose(2, 0, 1),  # permute(ties, {2, 0, 1})
}
FLOAT_INPUTS = ["x", "x_permuted", "x_sliced", "col_expanded"]
INT_INPUTS = ["ties", "ties_permuted"]
DIMS_LISTS = [[], [0], [1], [-1], [0, 2], [2, 0], [-1, 1], [0, 1, 2]]


def axis(dims):
    return tuple(dims) if dims else None


def logsumexp(a, dims, keepdim):
    m = a.max(axis=axis(dims), keepdims=True)
    out = np.log(np.exp(a - m).sum(axis=axis(dims), keepdims=True)) + m
    return out if keepdim else out.reshape(np.sum(a, axis=axis(dims)).shape)


def softmax(a, d):
    e = np.exp(a - a.max(axis=d, keepdims=True))
    return e / e.sum(axis=d, keepdims=True)


def log_softmax(a, d):
    shifted = a - a.max(axis=d, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=d, keepdims=True))


REDUCTIONS = {  # op -> f(a, dims, keepdim)
    "sum": lambda a, dims, k: np.sum(a, axis=axis(dims), keepdims=k),
    "mean": lambda a, dims, k: np.mean(a, axis=axis(dims), keepdims=k),
    "amax": lambda a, dims, k: np.max(a, axis=axis(dims), keepdims=k),
    "amin": lambda a, dims, k: np.min(a, axis=axis(dims), keepdims=k),
    "var": lambda a, dims, k: np.var(a, axis=axis(dims), keepdims=k, ddof=1),
    "var_biased": lambda a, dims, k: np.var(a, axis=axis(dims), keepdims=k, ddof=0),
    "logsumexp": logsumexp,
}
INT_REDUCTIONS = ["sum", "amax", "amin"]

ALONG_DIM = {  # op -> f(a, dim, keepdim); keepdim only matters to argmax/argmin
    "softmax": lambda a, d, k: softmax(a, d),
    "log_softmax": lambda a, d, k: log_softmax(a, d),
    "cumsum": lambda a, d, k: np.cumsum(a, axis=d),
    "cumsum_reverse": lambda a, d, k: np.flip(np.cumsum(np.flip(a, d), axis=d), d),
    "argmax": lambda a, d, k: np.argmax(a, axis=d, keepdims=k),
    "argmin": lambda a, d, k: np.argmin(a, axis=d, keepdims=k),
}
INT_ALONG_DIM = ["cumsum", "cumsum_reverse", "argmax", "argmin"]

# Broadcast gradients of shape (2, 3, 4) summed back to these input shapes.
SUM_TO_SHAPES = [[3, 1], [1, 4], [], [2, 1, 4], [4], [3, 4], [1, 1, 1], [2, 3, 4]]


def sum_to(a, shape):
    lead = a.ndim - len(shape)
    dims = [d for d in range(a.ndim) if d < lead or (shape[d - lead] == 1 and a.shape[d] != 1)]
    return a.sum(axis=tuple(dims), keepdims=True).reshape(shape)


def case(op, input_name, expected, **args):
    expected = np.asarray(expected)
    return dict(op=op, input=input_name, **args, shape=list(expected.shape),
                values=expected.ravel().tolist())


def cases():
    out = []
    for name in FLOAT_INPUTS + INT_INPUTS:
        a = INPUTS[name]
        ops = REDUCTIONS if name in FLOAT_INPUTS else INT_REDUCTIONS
        # keepdim changes only the shape, so it is enough to try it on one input of each kind.
        keepdims = [False, True] if name in ("x", "ties") else [False]
        for op in ops:
            for dims in DIMS_LISTS:
                for k in keepdims:
                    out.append(case(op, name, REDUCTIONS[op](a, dims, k), dims=dims, keepdim=k))
        ops = ALONG_DIM if name in FLOAT_INPUTS else INT_ALONG_DIM
        for op in ops:
            for d in [0, 1, 2, -1]:
                for k in keepdims if op.startswith("arg") else [False]:
                    out.append(case(op, name, ALONG_DIM[op](a, d, k), dims=[d], keepdim=k))
    for name in ["x", "col_expanded", "ties"]:
        for shape in SUM_TO_SHAPES:
            out.append(case("sum_to", name, sum_to(INPUTS[name], shape), dims=[], keepdim=False,
                            to=shape))
    return out


def main():
    bases = {"x": x, "col": col, "ties": ties}  # the views above are built from these
    data = {
        "inputs": {n: {"shape": list(a.shape), "values": a.ravel().tolist()}
                   for n, a in bases.items()},
        "cases": cases(),
    }
    path = pathlib.Path(__file__).resolve().parents[1] / "data" / "reduce_cases.json"
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {len(data['cases'])} cases to {path}")


if __name__ == "__main__":
    main()
