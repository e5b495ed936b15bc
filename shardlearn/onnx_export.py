"""ONNX export of shardlearn's linear models: a Java, C++ or C# service scores them with
onnxruntime. The graph is built with the ``onnx`` package's helpers (no hand-written
protobuf); ``pip install 'shardlearn[onnx]'`` brings it.

Inputs: one double tensor ``X`` ``[N, d]`` (the model's features), or, when the model
file records a table encoding (the CLI's CSV or Parquet training), one ``[N, 1]`` input per
column, named as the column: doubles for numeric columns, strings for categorical ones.
A one-hot column becomes a lookup (``ai.onnx.ml.LabelEncoder``: a value never seen in
training gives a zero contribution, as ``predict`` does); a hashed column the same
murmurhash3 of ``"column=value"`` as training (``com.microsoft.MurmurHash3``, an
onnxruntime operator: such files need onnxruntime, which every language binding has).
Each categorical column adds its weights by a ``Gather``, never a 2^bits-wide row.

Outputs: regression ``variable`` ``[N]``; classifiers ``label`` ``[N]`` and
``probabilities`` ``[N, K]`` (logistic: 2 columns for binary) or ``scores`` (SVM: the
decision function, ``[N]`` binary, ``[N, K]`` one-vs-rest).

Not exported, with a one-line error: multi-task and grouped models (their rows need a
task or group lookup the consumer would have to reproduce), and the online learners
(``shardlearn learn``: Vowpal Wabbit-style feature hashing of text lines).
"""
from __future__ import annotations

import numpy as np

from shardlearn.core.errors import ConfigError

OPSET = 20  # StringConcat
ML_OPSET = 3


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install 'shardlearn[onnx]'") from None
    return onnx


def weights(est) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)``: ``W`` ``(d, K)`` and ``b`` ``(K,)`` of any of the three estimators (K=1
    for regression and binary classifiers)."""
    W = np.asarray(est.coef_, dtype=np.float64)
    W = W[:, None] if W.ndim == 1 else W.T
    return W, np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))


class _Graph:
    """Nodes and constants under names of our own (``shardlearn.*``: never a column's)."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper, self.nodes, self.inits = helper, numpy_helper, [], []

    def const(self, name, value) -> str:
        self.inits.append(self.numpy_helper.from_array(np.asarray(value), f"shardlearn.{name}"))
        return f"shardlearn.{name}"

    def node(self, op, inputs, output, public=False, **attrs) -> str:
        out = output if public else f"shardlearn.{output}"
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], **attrs))
        return out


def to_onnx(est, path: str, encoder=None) -> None:
    """Write ``est`` (a fitted LinearRegression, LogisticRegression or LinearSVC) to ``path``;
    ``encoder``: the ``shardlearn.data.Encoder`` its training rows went through, if any."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    kind = type(est).__name__
    if kind not in ("LinearRegression", "LogisticRegression", "LinearSVC"):
        raise ConfigError(f"{kind} cannot be exported to ONNX: linear, logistic and SVM models only (a multi-task "
                          "or grouped model needs each row's task or group; online learners hash text lines)")
    W, b = weights(est)
    g = _Graph(helper, numpy_helper)
    if encoder is None:
        inputs = [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, W.shape[0]])]
        xw = g.node("MatMul", ["X", g.const("W", W)], "xw")
    else:
        taken = OUTPUTS & {str(c) for c in encoder.numeric + encoder.categorical}
        if taken:
            raise ConfigError(f"column {sorted(taken)[0]!r} has the name of an output of the ONNX model; rename it "
                              "in the data to export")
        inputs, xw = _encoded(g, encoder, W, helper, TensorProto)
    z = g.node("Add", [xw, g.const("b", b)], "z")
    outputs = _outputs(g, est, kind, z, W.shape[1], helper, TensorProto)
    graph = helper.make_graph(g.nodes, f"shardlearn_{kind}", inputs, outputs, g.inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET),
              helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="shardlearn")
    onnx.checker.check_model(model)
    onnx.save(model, path)


OUTPUTS = {"label", "probabilities", "variable", "scores"}


def _encoded(g, encoder, W, helper, TensorProto):
    """``(inputs, xw)``: one input per table column; numeric columns enter by a product, each
    categorical column by looking up its value's weights."""
    n_num, parts = len(encoder.numeric), []
    inputs = [helper.make_tensor_value_info(str(c), TensorProto.DOUBLE, [None, 1]) for c in encoder.numeric]
    if n_num:
        numeric = g.node("Concat", [str(c) for c in encoder.numeric], "numeric", axis=1)
        parts.append(g.node("MatMul", [numeric, g.const("W_numeric", W[:n_num])], "xw_numeric"))
    at = n_num
    for j, c in enumerate(encoder.categorical):
        inputs.append(helper.make_tensor_value_info(str(c), TensorProto.STRING, [None, 1]))
        flat = g.node("Reshape", [str(c), g.const(f"cat{j}_shape", np.array([-1], np.int64))], f"cat{j}_flat")
        if encoder.hash_bits is None:
            vocab = [str(v) for v in encoder.vocab[c]]
            block = np.vstack([W[at:at + len(vocab)], np.zeros((1, W.shape[1]))])  # last row: an unseen value
            at += len(vocab)
            index = g.node("LabelEncoder", [flat], f"cat{j}_index", domain="ai.onnx.ml", keys_strings=vocab,
                           values_int64s=list(range(len(vocab))), default_int64=len(vocab))
        else:  # FeatureHasher: abs(murmurhash3_32("c=v", seed 0)) mod 2^bits, one weight block for every column
            block = W[n_num:]
            prefix = g.const(f"cat{j}_prefix", np.array(f"{c}=", dtype=object))
            token = g.node("StringConcat", [prefix, flat], f"cat{j}_token")
            hashed = g.node("MurmurHash3", [token], f"cat{j}_hash", domain="com.microsoft", seed=0, positive=0)
            width = g.const(f"cat{j}_width", np.array(1 << encoder.hash_bits, np.int32))
            index = g.node("Mod", [g.node("Abs", [hashed], f"cat{j}_abs"), width], f"cat{j}_index")
        parts.append(g.node("Gather", [g.const(f"W_cat{j}", block), index], f"xw_cat{j}", axis=0))
    if not parts:
        raise ConfigError("the model reads no column: nothing to export")
    return inputs, g.node("Sum", parts, "xw")


def _outputs(g, est, kind, z, K, helper, TensorProto):
    flat = g.const("flat_shape", np.array([-1], np.int64)) if kind == "LinearRegression" or K == 1 else None
    if kind == "LinearRegression":
        g.node("Reshape", [z, flat], "variable", public=True)
        return [helper.make_tensor_value_info("variable", TensorProto.DOUBLE, [None])]
    classes = np.asarray(est.classes_)
    strings = classes.dtype.kind in "OUS"
    table = g.const("classes", classes.astype(object) if strings else classes.astype(np.int64))
    if K == 1:  # binary: the positive class where z > 0
        z1 = g.node("Reshape", [z, flat], "z1")
        index = g.node("Cast", [g.node("Greater", [z1, g.const("zero", np.array(0.0))], "positive")], "label_index",
                       to=TensorProto.INT64)
    else:
        index = g.node("ArgMax", [z], "label_index", axis=1, keepdims=0)
    g.node("Gather", [table, index], "label", public=True, axis=0)
    out = [helper.make_tensor_value_info("label", TensorProto.STRING if strings else TensorProto.INT64, [None])]
    if kind == "LinearSVC":
        g.node("Identity", [z1 if K == 1 else z], "scores", public=True)
        return out + [helper.make_tensor_value_info("scores", TensorProto.DOUBLE, [None] if K == 1 else [None, K])]
    if K == 1:
        p1 = g.node("Sigmoid", [z], "p1")
        p0 = g.node("Sub", [g.const("one", np.array(1.0)), p1], "p0")
        g.node("Concat", [p0, p1], "probabilities", public=True, axis=1)
    else:
        g.node("Softmax", [z], "probabilities", public=True, axis=1)
    return out + [helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, max(K, 2)])]
