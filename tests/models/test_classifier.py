"""The sentiment classifier: padding (amount, side, batch company) never changes a sentence's probability."""

import numpy as np
import pytest
import torch

from lstm_lab.models.classifier import SentimentClassifier, left_align, predict_probabilities
from lstm_lab.models.spec import ModelSpec

torch.set_num_threads(1)

SPECS = {
    "lstm-last": ModelSpec(hidden_sizes=[12]),
    "bilstm-attention": ModelSpec(hidden_sizes=[12], bidirectional=True, pooling="attention", attention="additive"),
    "stacked-bilstm-mean": ModelSpec(hidden_sizes=[12, 8], bidirectional=True, pooling="mean", merge="sum"),
    "cell-recurrent-dropout": ModelSpec(hidden_sizes=[10], impl="cell", recurrent_dropout=0.3, pooling="last",
                                        bidirectional=True),
}
SENTENCE = torch.tensor([5, 17, 3, 42, 9, 1, 28])  # 1 = OOV is a real token, not padding


def padded(length: int, side: str) -> torch.Tensor:
    row = torch.zeros(length, dtype=torch.long)
    if side == "pre":
        row[length - len(SENTENCE):] = SENTENCE
    else:
        row[: len(SENTENCE)] = SENTENCE
    return row


@pytest.fixture(params=list(SPECS), ids=list(SPECS))
def net(request):
    torch.manual_seed(0)
    return SentimentClassifier(vocab_size=50, embedding_dim=8, spec=SPECS[request.param],
                               embedding_dropout=0.2).eval()


def test_padding_to_20_or_200_gives_the_same_probability(net):
    reference = net.predict_proba(SENTENCE[None])[0]
    for length in (20, 200):
        for side in ("pre", "post"):
            p = net.predict_proba(padded(length, side)[None])[0]
            torch.testing.assert_close(p, reference, rtol=0, atol=1e-6)


def test_padding_inside_a_batch_of_longer_sentences(net):
    torch.manual_seed(1)
    others = torch.randint(1, 50, (3, 200))  # full-length rows: the sentence is padded to 200 in this batch
    batch = torch.stack([padded(200, "pre"), *others, padded(200, "post")])
    probs = net.predict_proba(batch)
    alone = net.predict_proba(SENTENCE[None])[0]
    torch.testing.assert_close(probs[0], alone, rtol=0, atol=1e-6)
    torch.testing.assert_close(probs[-1], alone, rtol=0, atol=1e-6)
    # The batched numpy path (length-sorted batches) agrees too, in the input order.
    fast = predict_probabilities(net, batch.numpy(), batch_size=2)
    np.testing.assert_allclose(fast, probs.double().numpy(), atol=1e-6)


def test_gradients_ignore_padding_and_shapes(net):
    net.train()
    ids = torch.stack([padded(30, "post"), padded(30, "pre")])
    logits = net(ids)
    assert logits.shape == (2,)
    logits.sum().backward()
    assert torch.count_nonzero(net.embedding.weight.grad[0]) == 0  # PAD's embedding never learns
    assert torch.count_nonzero(net.embedding.weight[0]) == 0


def test_left_align_and_empty_rows():
    ids = torch.tensor([[0, 0, 4, 5], [6, 7, 0, 0], [0, 0, 0, 0]])
    aligned, lengths = left_align(ids)
    assert aligned.tolist() == [[4, 5, 0, 0], [6, 7, 0, 0], [0, 0, 0, 0]]
    assert lengths.tolist() == [2, 2, 1]  # an empty row reads one PAD step: a defined output, no crash
    net = SentimentClassifier(10, 4, ModelSpec(hidden_sizes=[4])).eval()
    assert torch.isfinite(net(ids)).all()


def test_config_rebuilds_the_same_network():
    torch.manual_seed(0)
    net = SentimentClassifier(30, 6, SPECS["bilstm-attention"]).eval()
    twin = SentimentClassifier(**net.config()).eval()
    twin.load_state_dict(net.state_dict())
    ids = torch.randint(0, 30, (4, 9))
    torch.testing.assert_close(net(ids), twin(ids))


def test_word_dropout_reads_tokens_as_oov_while_training_only():
    torch.manual_seed(0)
    net = SentimentClassifier(30, 6, ModelSpec(hidden_sizes=[5]), word_dropout=0.999999)
    ids = torch.tensor([[0, 0, 4, 5, 6], [7, 8, 9, 0, 0]])
    all_oov = torch.where(ids > 1, torch.ones_like(ids), ids)
    net.train()
    torch.testing.assert_close(net(ids), net(all_oov))  # every real token dropped, padding untouched
    net.eval()
    assert not torch.allclose(net(ids), net(all_oov))  # evaluation reads the real tokens
    with pytest.raises(ValueError, match="word_dropout"):
        SentimentClassifier(30, 6, word_dropout=1.0)
