"""RowTensor gradients: ``nn.EmbeddingLookup(sparse=True, target="CPU")`` in GRAPH_MODE hands the optimizer
a RowTensor, which ours makes dense in the graph (repeated rows summed). The reference is ``nn.RMSProp``
on the same table as a dense ``nn.Embedding`` (``nn.RMSProp`` itself fails on the RowTensor)."""

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")
from mindspore import Tensor, nn

from rmsprop_ops.mindspore import RMSProp

VOCAB, DIM, STEPS = 40, 4, 8


def _table():
    return np.random.RandomState(0).uniform(-0.5, 0.5, (VOCAB, DIM)).astype(np.float32)


class Net(nn.Cell):
    def __init__(self, sparse):
        super().__init__()
        self.emb = nn.EmbeddingLookup(VOCAB, DIM, sparse=True, target="CPU") if sparse else nn.Embedding(VOCAB, DIM)
        self.emb.embedding_table.set_data(Tensor(_table()))

    def construct(self, ids, w):
        return (self.emb(ids) * w).sum()


def _batch(step):
    rs = np.random.RandomState(100 + step)
    ids = rs.randint(0, VOCAB, (1, 6)).astype(np.int32)
    ids[0, 1] = ids[0, 0]  # a repeated row
    return Tensor(ids), Tensor(rs.randn(1, 6, DIM).astype(np.float32))


def _train(net, opt):
    step = nn.TrainOneStepCell(net, opt)
    for s in range(STEPS):
        step(*_batch(s))
    return net.emb.embedding_table.asnumpy()


@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(centered=True, momentum=0.5),
                                dict(weight_decay=0.01), dict(flat_state=True, momentum=0.9)],
                         ids=["plain", "momentum", "centered", "decay", "flat"])
def test_graph_mode_row_tensor_gradients_train_like_the_dense_table(kw):
    ms.set_context(mode=ms.GRAPH_MODE)
    ref_kw = {k: v for k, v in kw.items() if k != "flat_state"}
    ours = Net(True)
    got = _train(ours, RMSProp(ours.trainable_params(), learning_rate=0.01, **kw))
    ref = Net(False)
    want = _train(ref, nn.RMSProp(ref.trainable_params(), learning_rate=0.01, **ref_kw))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(got, _table())


def test_pynative_mode_hands_over_values_without_rows():
    """MindSpore's PyNative gradient of the sparse lookup is the (lookups, dim) values alone: refused by
    shape, naming the gradient."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        net = Net(True)
        step = nn.TrainOneStepCell(net, RMSProp(net.trainable_params(), learning_rate=0.01))
        with pytest.raises(ValueError, match=r"grads\[0\]: expected shape \(40, 4\) like params\[0\], got \(6, 4\)"):
            step(*_batch(0))
        np.testing.assert_array_equal(net.emb.embedding_table.asnumpy(), _table())
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)
