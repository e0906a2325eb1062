"""The character LM and its generator: state carrying equals a full re-run, tying, seeded and greedy sampling."""

import pytest
import torch

from lstm_lab.data.chars import CharVocab
from lstm_lab.errors import LstmLabError
from lstm_lab.models.char_lm import CharLM, detach_state
from lstm_lab.models.encoder import LSTMEncoder
from lstm_lab.models.generate import generate_ids, generate_text, pick_next
from lstm_lab.models.spec import ModelSpec

V = 11


def lm(**kw):
    torch.manual_seed(0)
    tie = kw.pop("tie_weights", False)
    dim = kw.pop("embedding_dim", 6)
    return CharLM(V, ModelSpec(**{"hidden_sizes": [8, 8, 5], **kw}), embedding_dim=dim, tie_weights=tie).eval()


@pytest.mark.parametrize("kw", [{"impl": "native"}, {"impl": "cell"}, {"variant": "CIFG"}, {"dropout": 0.3}])
def test_stepping_one_char_at_a_time_equals_the_full_sequence(kw):
    model = lm(**kw)  # three layers in two blocks (8, 8 | 5): state of every block carried
    ids = torch.randint(0, V, (3, 17))
    full, full_state = model(ids)  # (3, 17, V)
    state, steps = None, []
    for t in range(ids.shape[1]):
        logits, state = model(ids[:, t : t + 1], state)  # (3, 1, V)
        steps.append(logits)
    torch.testing.assert_close(steps[-1][:, 0], full[:, -1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    for (h, c), (h_full, c_full) in zip(state, full_state, strict=True):
        torch.testing.assert_close(h, h_full, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(c, c_full, atol=1e-5, rtol=1e-5)
    # Chunks of uneven length (truncated BPTT) carry the same way.
    first, state = model(ids[:, :5])
    rest, _ = model(ids[:, 5:], detach_state(state))
    torch.testing.assert_close(torch.cat([first, rest], 1), full, atol=1e-5, rtol=1e-5)


def test_generation_matches_rerunning_the_whole_text():
    """The O(1)-per-character generator picks what a model re-reading everything so far would pick."""
    model = lm()
    prompt = [1, 2, 3]
    new = generate_ids(model, prompt, 12, greedy=True)
    seq = list(prompt)
    for _ in range(12):
        logits, _ = model(torch.tensor([seq]))
        seq.append(int(logits[0, -1].argmax()))
    assert new == seq[len(prompt) :]


def test_encoder_state_is_backward_compatible():
    torch.manual_seed(0)
    enc = LSTMEncoder(3, ModelSpec(hidden_sizes=[4, 4, 2])).eval()
    x = torch.randn(2, 6, 3)
    seq, pooled = enc(x)
    seq2, final = enc.sequence(x)
    torch.testing.assert_close(seq, seq2)
    assert len(final) == len(enc.blocks) == 2 and final[0][0].shape == (2, 2, 4) and final[1][0].shape == (1, 2, 2)
    torch.testing.assert_close(pooled, final[-1][0][-1])
    # Continuing from the state of the first half equals reading the whole sequence.
    first, mid = enc.sequence(x[:, :3])
    _, pooled_rest = enc(x[:, 3:], state=mid)
    torch.testing.assert_close(pooled_rest, pooled, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="state has 1 entries"):
        enc.sequence(x, state=final[:1])


def test_weight_tying_shares_the_embedding():
    tied = lm(tie_weights=True)  # encoder width 5 != embedding 6: a projection first
    assert tied.head.weight is tied.embed.weight and tied.proj is not None
    assert tied(torch.randint(0, V, (2, 4)))[0].shape == (2, 4, V)
    same = lm(tie_weights=True, embedding_dim=5)
    assert same.proj is None and same.head.weight is same.embed.weight
    untied = lm()
    assert untied.head.weight is not untied.embed.weight and untied.proj is None
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731 - parameters() deduplicates shared
    assert n(same) == n(lm(embedding_dim=5)) - V * 5
    # A round trip through a state_dict keeps the tie.
    copy = lm(tie_weights=True)
    copy.load_state_dict(tied.state_dict())
    assert copy.head.weight is copy.embed.weight


def test_bidirectional_is_rejected():
    with pytest.raises(ValueError, match="left to right"):
        CharLM(V, ModelSpec(hidden_sizes=[4], bidirectional=True))


def test_seeded_sampling_is_reproducible_and_seed_dependent():
    model = lm()
    a = generate_ids(model, [1], 40, temperature=1.0, seed=7)
    assert a == generate_ids(model, [1], 40, temperature=1.0, seed=7)
    assert a != generate_ids(model, [1], 40, temperature=1.0, seed=8)
    g = torch.Generator().manual_seed(7)
    assert generate_ids(model, [1], 40, generator=g) == a


def test_greedy_is_argmax_and_top_k_one_is_greedy():
    logits = torch.tensor([[0.1, 2.0, -1.0, 1.9], [3.0, 0.0, 0.0, 0.0]])
    assert pick_next(logits, greedy=True).tolist() == [1, 0]
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert pick_next(logits, top_k=1, temperature=5.0, generator=g).tolist() == [1, 0]
    # top-k = 2 never leaves the two largest logits; banned ids are never picked.
    picks = {int(pick_next(logits[:1], top_k=2, temperature=10.0, generator=g)) for _ in range(200)}
    assert picks == {1, 3}
    banned = {int(pick_next(logits[:1], temperature=10.0, generator=g, banned_ids=(1,))) for _ in range(200)}
    assert 1 not in banned
    assert int(pick_next(logits[:1], greedy=True, banned_ids=(1,))) == 3
    model = lm()
    assert generate_ids(model, [4, 2], 15, greedy=True) == generate_ids(model, [4, 2], 15, top_k=1, seed=3)


def test_low_temperature_approaches_greedy():
    model = lm()
    assert generate_ids(model, [3], 20, temperature=1e-4, seed=0) == generate_ids(model, [3], 20, greedy=True)


@pytest.mark.parametrize("kw,match", [
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"temperature": -1.0}, "temperature must be > 0"),
    ({"temperature": float("nan")}, "temperature must be > 0"),
    ({"top_k": 0}, "top_k must be >= 1"),
])
def test_bad_sampling_settings(kw, match):
    with pytest.raises(LstmLabError, match=match):
        generate_ids(lm(), [1], 5, **kw)


def test_text_generation_errors_and_unk():
    vocab = CharVocab.build("abcdefghij")  # 10 characters + UNK = 11 ids = V
    model = lm()
    with pytest.raises(LstmLabError, match=r"never seen in the training text: 'z' \(U\+007A\)"):
        generate_text(model, vocab, "abz", 5)
    with pytest.raises(LstmLabError, match="prompt is empty"):
        generate_text(model, vocab, "", 5)
    with pytest.raises(LstmLabError, match="prompt is empty"):
        generate_ids(model, [], 5)
    text = generate_text(model, vocab, "abc", 200, temperature=3.0, seed=0)  # hot: every id is likely
    assert len(text) == 200 and set(text) <= set("abcdefghij")  # UNK never produced
    assert generate_text(model, vocab, "abc", 0) == ""
