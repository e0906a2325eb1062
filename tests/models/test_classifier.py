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


# ------------------------------------------------------------------------------------------------------ subwords
SUBWORDS = {"buckets": 64, "pooling": "mean"}
# Type table (K, 1 + G): row 0 PAD; types 1..5 with word ids (1 = OOV) and n-gram ids + 1 (0 = none).
TABLE = torch.tensor([[0, 0, 0, 0],
                      [5, 3, 4, 0],     # a vocabulary word
                      [1, 3, 4, 9],     # an OOV word sharing two n-grams with it
                      [1, 20, 21, 22],  # another OOV word, other n-grams
                      [7, 0, 0, 0],     # a vocabulary word too short for any n-gram of the configured lengths
                      [1, 0, 0, 0]])    # "<oov>" itself: no n-grams


def subword_net(**kw) -> SentimentClassifier:
    torch.manual_seed(0)
    return SentimentClassifier(10, 6, ModelSpec(hidden_sizes=[5], bidirectional=True, pooling="mean"),
                               subwords=SUBWORDS, **kw).eval()


def test_subwords_add_the_mean_ngram_vector_to_the_word_vector():
    net = subword_net()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    x = net.embed(ids, TABLE)  # (1, 5, 6)
    words, bag = net.embedding.weight, net.ngrams.weight
    torch.testing.assert_close(x[0, 0], words[5] + (bag[3] + bag[4]) / 2)
    torch.testing.assert_close(x[0, 1], words[1] + (bag[3] + bag[4] + bag[9]) / 3)
    torch.testing.assert_close(x[0, 3], words[7])  # no n-grams: the word vector alone
    torch.testing.assert_close(x[0, 4], words[1])
    # Two OOV words: one shared OOV vector without subwords, two different vectors with them.
    assert not torch.allclose(x[0, 1], x[0, 2])
    torch.testing.assert_close(net.embed(torch.tensor([[0]]), TABLE)[0, 0], torch.zeros(6))  # padding stays zero
    with pytest.raises(ValueError, match="reads subwords"):
        net(ids)
    with pytest.raises(ValueError, match="subwords must be"):
        SentimentClassifier(10, 6, subwords={"buckets": 8, "pooling": "max"})


def test_subword_classifier_ignores_padding_and_rebuilds_from_its_config():
    net = subword_net()
    sentence = torch.tensor([1, 2, 3, 4, 5, 2])
    reference = net.predict_proba(sentence[None], subwords=TABLE)[0]
    for length in (20, 200):
        for side in ("pre", "post"):
            row = torch.zeros(length, dtype=torch.long)
            if side == "pre":
                row[length - 6:] = sentence
            else:
                row[:6] = sentence
            torch.testing.assert_close(net.predict_proba(row[None], subwords=TABLE)[0], reference)
    twin = SentimentClassifier(**net.config()).eval()
    twin.load_state_dict(net.state_dict())
    assert net.config()["subwords"] == SUBWORDS
    ids = torch.randint(0, 6, (4, 9))
    torch.testing.assert_close(net(ids, subwords=TABLE), twin(ids, subwords=TABLE))
    np.testing.assert_allclose(predict_probabilities(net, ids.numpy(), subwords=TABLE.numpy()),
                               net.predict_proba(ids, subwords=TABLE).numpy(), rtol=1e-6)


def test_subword_gradients_reach_the_used_buckets_only():
    net = subword_net().train()
    net(torch.tensor([[1, 2, 0]]), subwords=TABLE).sum().backward()
    used = net.ngrams.weight.grad.abs().sum(dim=1) > 0
    assert used.nonzero().flatten().tolist() == [3, 4, 9]  # not 0 (no n-gram), not the absent types' 20-22


def test_word_dropout_with_subwords_drops_the_word_vector_only():
    net = subword_net(word_dropout=0.999999)
    ids = torch.tensor([[0, 1, 2, 3, 4], [5, 4, 1, 0, 0]])
    unseen = TABLE.clone()
    unseen[1:, 0] = 1  # every type read as an unseen word, its n-grams kept
    no_ngrams = unseen.clone()
    no_ngrams[:, 1:] = 0
    net.train()
    torch.testing.assert_close(net(ids, subwords=TABLE), net(ids, subwords=unseen))
    assert not torch.allclose(net(ids, subwords=TABLE), net(ids, subwords=no_ngrams))  # the n-grams still count
    net.eval()
    assert not torch.allclose(net(ids, subwords=TABLE), net(ids, subwords=unseen))
