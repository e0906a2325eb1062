"""The sentiment task's additions: weight drop on W_hh, pretrained (and frozen) embeddings, and ensembles trained
as N seeds, stored as one checkpoint and served by the pyfunc model as one model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_lab.data.text import TextConfig, Tokenizer
from lstm_lab.models.classifier import SentimentClassifier, SentimentEnsemble, predict_probabilities
from lstm_lab.models.spec import ModelSpec
from lstm_lab.training.entry import run_training
from lstm_lab.training.sentiment.params import SentimentParams
from lstm_lab.training.sentiment.task import TASK, train

torch.set_num_threads(1)

WORDS = {1: ["great", "lovely", "superb", "fresh"], 0: ["awful", "rude", "stale", "bland"]}
NOUNS = ["food", "staff", "film", "plot", "place"]


def texts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    out = [f"the {rng.choice(NOUNS)} was {rng.choice(WORDS[int(y)])} and the {rng.choice(NOUNS)} too" for y in labels]
    return out, labels.astype(np.float32)


@pytest.fixture(scope="module")
def data():
    train_texts, train_labels = texts(96, 0)
    val_texts, val_labels = texts(32, 1)
    tok = Tokenizer.fit(train_texts, TextConfig(max_length=12))
    train_ids, _ = tok.encode_padded(train_texts)
    val_ids, _ = tok.encode_padded(val_texts)
    return {"train_ids": train_ids, "train_labels": train_labels, "val_ids": val_ids, "val_labels": val_labels,
            "vocab_size": len(tok), "tokenizer": tok.to_dict()}


def params(**change) -> SentimentParams:
    raw = {"embedding": {"dim": 6}, "model": {"hidden_sizes": [6], "bidirectional": True, "pooling": "mean"},
           "training": {"max_epochs": 2, "batch_size": 16, "num_threads": 1, "resume": "never",
                        "early_stopping_patience": None}}
    for key, value in change.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return SentimentParams.model_validate(raw)


# ------------------------------------------------------------------------------------------------- weight drop
@pytest.mark.parametrize("spec", [ModelSpec(hidden_sizes=[6], bidirectional=True, pooling="mean"),
                                  ModelSpec(hidden_sizes=[6, 4], impl="cell", recurrent_dropout=0.2)],
                         ids=["native-bilstm", "cell-stacked"])
def test_weight_drop_masks_w_hh_while_training_only(spec):
    torch.manual_seed(0)
    net = SentimentClassifier(30, 5, spec, weight_drop=0.5)
    plain = SentimentClassifier(30, 5, spec)
    assert list(net.state_dict()) == list(plain.state_dict())  # same keys: checkpoints and serving unchanged
    ids, lengths = torch.randint(2, 30, (4, 7)), torch.tensor([7, 5, 3, 1])
    net.eval()
    torch.testing.assert_close(net(ids, lengths), net(ids, lengths))  # no mask at inference
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    torch.manual_seed(1)
    first = net(ids, lengths)
    torch.manual_seed(1)
    torch.testing.assert_close(net(ids, lengths), first)  # seeded
    torch.manual_seed(2)
    assert not torch.allclose(net(ids, lengths), first)  # another mask, another output
    first.sum().backward()
    for name, param in net.named_parameters():
        if "weight_hh" in name:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    for key, value in net.state_dict().items():  # the dropped copies never replaced the parameters
        torch.testing.assert_close(value, before[key])


# ---------------------------------------------------------------------------------------------- word vectors
def vector_data(data, found_words: int = 5):
    rng = np.random.default_rng(3)
    vectors = rng.normal(0, 0.4, size=(data["vocab_size"], 6)).astype(np.float32)
    found = np.zeros(data["vocab_size"], dtype=bool)
    found[2 : 2 + found_words] = True
    vectors[~found] = 0
    return {**data, "embedding_vectors": vectors, "embedding_found": found}


@pytest.mark.parametrize("freeze", [True, False], ids=["frozen", "fine-tuned"])
def test_pretrained_rows_start_the_embedding_and_frozen_ones_stay(data, freeze):
    vdata = vector_data(data)
    p = params(embedding={"vectors": {"path": "unused-here.txt", "freeze": freeze}},
               training={"max_epochs": 1, "trainer": {"limit_train_batches": 2}})
    module, _ = TASK.build(p, vdata)
    start = module.net.embedding.weight.detach().clone()
    found = vdata["embedding_found"]
    np.testing.assert_array_equal(start.numpy()[found], vdata["embedding_vectors"][found])
    assert (start[0] == 0).all() and (start[~torch.from_numpy(found)][1:] != 0).all()
    assert module.net.embedding.weight.requires_grad is not freeze
    result = run_training(TASK, p, vdata)
    after = result.module.net.embedding.weight.detach()
    if freeze:
        torch.testing.assert_close(after, start, rtol=0, atol=0)  # not one step moved it
        assert result.module.net.encoder.blocks[0].weight_ih_l0.requires_grad  # the rest trains
    else:
        assert not torch.equal(after, start)
    rebuilt = TASK.from_checkpoint(result.checkpoint).net  # serving needs no vectors file: the weights are stored
    torch.testing.assert_close(rebuilt.embedding.weight, after)


# -------------------------------------------------------------------------------------------------- ensembles
@pytest.fixture(scope="module")
def ensemble(data):
    return train(params(ensemble=2, weight_drop=0.2), data)


def test_ensemble_members_are_the_single_runs_of_their_seeds(data, ensemble):
    checkpoint, history = ensemble
    net = TASK.from_checkpoint(checkpoint).net
    assert isinstance(net, SentimentEnsemble) and len(net) == 2
    assert checkpoint["hyper_parameters"]["ensemble"] == 2
    assert [m["seed"] for m in checkpoint["ensemble"]["members"]] == [42, 43]
    assert 0 <= checkpoint["ensemble"]["val_acc"] <= 1 and checkpoint["ensemble"]["val_loss"] > 0
    assert pd.DataFrame(history)["member"].tolist() == [0, 0, 1, 1]
    for k, seed in enumerate((42, 43)):  # the benchmark reads member k as the single model of seed 42 + k
        single, _ = train(params(weight_drop=0.2, training={"seed": seed}), data)
        one = TASK.from_checkpoint(single).net
        for key, value in one.state_dict().items():
            torch.testing.assert_close(net.members[k].state_dict()[key], value, rtol=0, atol=0)


def test_ensemble_answers_the_mean_probability(data, ensemble):
    net = TASK.from_checkpoint(ensemble[0]).net
    probs = predict_probabilities(net, data["val_ids"])
    members = np.mean([predict_probabilities(m, data["val_ids"]) for m in net.members], axis=0)
    np.testing.assert_allclose(probs, members, atol=1e-6)


def test_served_ensemble_is_one_model(data, ensemble, tmp_path):
    import mlflow

    from lstm_lab.serving import sentiment_pyfunc

    checkpoint, _ = ensemble
    path = sentiment_pyfunc.save_model(tmp_path / "model", checkpoint, data["tokenizer"], ["negative", "positive"])
    model = mlflow.pyfunc.load_model(str(path))
    sentences, _ = texts(6, 5)
    served = model.predict(pd.DataFrame({"text": sentences}))
    tok = Tokenizer.from_dict(data["tokenizer"])
    expected = predict_probabilities(TASK.from_checkpoint(checkpoint).net, tok.encode_padded(sentences)[0])
    np.testing.assert_allclose(served["probability"], expected, atol=1e-6)
    assert set(served["label"]) <= {"negative", "positive"}


# --------------------------------------------------------------------------------------------------- subwords
def test_subword_params_are_off_by_default_and_bad_values_are_one_line():
    from lstm_lab.errors import LstmLabError
    from lstm_lab.params import validate

    assert SentimentParams().embedding.subwords is None
    s = validate("sentiment", {"embedding": {"subwords": {"buckets": 1024}}}).embedding.subwords
    assert (s.min_n, s.max_n, s.buckets, s.pooling) == (3, 5, 1024, "mean")
    cases = {
        "sentiment.embedding.subwords: Value error, max_n must be >= min_n, got min_n=4, max_n=3":
            {"min_n": 4, "max_n": 3},
        "sentiment.embedding.subwords.buckets: Input should be greater than or equal to 1": {"buckets": 0},
        "sentiment.embedding.subwords.pooling: Input should be 'mean' or 'sum'": {"pooling": "max"},
        "sentiment.embedding.subwords.bucket: unknown parameter \\(allowed here: buckets, max_n, min_n, pooling\\)":
            {"bucket": 10},
    }
    for message, raw in cases.items():
        with pytest.raises(LstmLabError, match=message) as info:
            validate("sentiment", {"embedding": {"subwords": raw}})
        assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def subword_data():
    from lstm_lab.data.text import SubwordConfig

    train_texts, train_labels = texts(96, 0)
    val_texts, val_labels = texts(32, 1)
    tok = Tokenizer.fit(train_texts, TextConfig(max_length=12), subwords=SubwordConfig(buckets=512))
    (train_ids, train_table), (val_ids, val_table) = tok.encode_model_input(train_texts), \
        tok.encode_model_input(val_texts)
    return {"train_ids": train_ids, "train_labels": train_labels, "val_ids": val_ids, "val_labels": val_labels,
            "train_subwords": train_table, "val_subwords": val_table, "vocab_size": len(tok),
            "tokenizer": tok.to_dict()}


SUBWORD_PARAMS = {"embedding": {"dim": 6, "subwords": {"buckets": 512}}}


def test_subword_ensemble_trains_and_is_served_as_the_pipeline_predicts(subword_data, tmp_path):
    import mlflow

    from lstm_lab.serving import sentiment_pyfunc

    checkpoint, _ = train(params(ensemble=2, **SUBWORD_PARAMS), subword_data)
    assert checkpoint["hyper_parameters"]["embedding"]["subwords"]["buckets"] == 512
    net = TASK.from_checkpoint(checkpoint).net
    assert all(m.ngrams is not None and m.ngrams.num_embeddings == 513 for m in net.members)
    path = sentiment_pyfunc.save_model(tmp_path / "model", checkpoint, subword_data["tokenizer"],
                                       ["negative", "positive"])
    model = mlflow.pyfunc.load_model(str(path))
    # Words the training texts never had ("superbly", "staleness"): both OOV, told apart by their n-grams only.
    sentences = [*texts(6, 5)[0], "the food was superbly", "the food was staleness", "the food was <oov>"]
    served = model.predict(pd.DataFrame({"text": sentences}))
    tok = Tokenizer.from_dict(subword_data["tokenizer"])
    ids, table = tok.encode_model_input(sentences)
    expected = predict_probabilities(net, ids, subwords=table)
    np.testing.assert_allclose(served["probability"], expected, atol=1e-6)
    superbly, staleness = served["probability"].iloc[-3], served["probability"].iloc[-2]
    assert abs(superbly - staleness) > 1e-4  # a word-only model gives every OOV word the same vector
    # Word ids alone are not what this model reads.
    with pytest.raises(ValueError, match="reads subwords"):
        predict_probabilities(net, tok.encode_padded(sentences)[0])
