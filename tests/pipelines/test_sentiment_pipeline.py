"""The sentiment pipeline: labelled files and their bad rows, the checksummed download (against a real HTTP
server on loopback), the seeded split, the scores, and an end-to-end ``kedro run`` on a slice of the UCI
sentences with a tiny model: metrics, the MLflow run, and the pyfunc model answering raw sentences.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import re
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from lstm_lab.data.download import DownloadError, Source, ensure, fetch, parse_checksum
from lstm_lab.datasets import LabelledTextDataset
from lstm_lab.errors import LstmLabError
from lstm_lab.pipelines.sentiment import nodes
from lstm_lab.evaluation.classification import binary_scores
from lstm_lab.training.sentiment.params import SentimentParams
from tests.conftest import REPO, SHARED, kedro, make_project, mlflow_client, write_yaml

UCI = SHARED / "uci_sentiment"
SST2 = SHARED / "sst2"
PARAMS = {"data": {"text_column": "sentence", "label_column": "label"}}


def uci_lines(name: str = "yelp", n: int = 1000) -> list[str]:
    path = UCI / f"{name}_labelled.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path.read_text(encoding="utf-8").splitlines()[:n]


def synthetic_lines(n: int, seed: int = 0) -> list[str]:
    """UCI-format lines (``sentence<TAB>label``) of made-up sentences: words drawn from a long-tailed vocabulary
    of 3000 (so the test split has words the training split never saw), about 55 % positive. For the tests of
    bad rows, splits and tokenisation, which need no real corpus."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(3000)])
    weights = 1.0 / np.arange(1, 3001)
    weights /= weights.sum()
    lines = []
    for _ in range(n):
        label = int(rng.random() < 0.55)
        sentence = " ".join(rng.choice(words, size=int(rng.integers(3, 15)), p=weights))
        lines.append(f"{'great' if label else 'awful'} {sentence}.\t{label}")
    return lines


def tsv_dataset(path: Path, **kw) -> LabelledTextDataset:
    return LabelledTextDataset(filepath=str(path), header=False, columns=["sentence", "label"], **kw)


def typed(raw: dict | None = None) -> SentimentParams:
    """What a node receives (the schema's defaults plus ``raw``)."""
    return SentimentParams.model_validate(raw or PARAMS)


def corpus_from(dataset: LabelledTextDataset, params: dict | None = None):
    return nodes.load_corpus(dataset.load(), typed(params))


# ------------------------------------------------------------------------------------------------ reading files
def test_tsv_csv_and_parquet_read_the_same_rows(tmp_path):
    rows = [("A \"quoted\", comma'd sentence.", 1), ("Plain text", 0), ("Another one", 1)]
    tsv = tmp_path / "r.txt"
    tsv.write_text(f"{rows[0][0]}\t1\n\n{rows[1][0]}\t0\r\n{rows[2][0]}\t1\n", encoding="utf-8")  # blank line, CRLF
    csv_path = tmp_path / "r.csv"
    pd.DataFrame(rows, columns=["sentence", "label"]).to_csv(csv_path, index=False)
    parquet = tmp_path / "r.parquet"
    pd.DataFrame(rows, columns=["sentence", "label"]).to_parquet(parquet)
    frames = {
        "tsv": tsv_dataset(tsv).load()["all"],
        "csv": LabelledTextDataset(filepath=str(csv_path)).load()["all"],
        "parquet": LabelledTextDataset(filepath=str(parquet)).load()["all"],
    }
    for kind, frame in frames.items():
        assert frame["sentence"].tolist() == [r[0] for r in rows], kind
        assert [int(v) for v in frame["label"]] == [1, 0, 1], kind
    assert frames["tsv"]["__line__"].tolist() == [1, 3, 4]  # real line numbers, the blank line counted
    assert frames["csv"]["__line__"].tolist() == [2, 3, 4]


BAD_ROWS = [
    # (name, file content, expected message)
    ("empty text", "good\t1\n\t0\n", r"bad\.txt: line 2: empty text in column 'sentence'"),
    ("whitespace text", "good\t1\nfine\t1\n   \t0\n", r"bad\.txt: line 3: empty text"),
    ("missing label", "good\t1\nfine\t\n", r"bad\.txt: line 2: missing label in column 'label'"),
    ("label outside the mapping", "good\t1\nfine\t2\n",
     r"bad\.txt: line 2: label '2' is not in sentiment\.data\.labels \(known: \['0', '1'\]\)"),
]


@pytest.mark.parametrize("name,content,message", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_bad_rows_name_the_file_and_line(tmp_path, name, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LstmLabError, match=message) as info:
        corpus_from(tsv_dataset(path))
    assert "\n" not in str(info.value)
    assert "on_bad_rows: skip" in str(info.value)


@pytest.mark.parametrize("name,content,message", [
    ("non-UTF-8 bytes", b"good\t1\ncaf\xe9 au lait\t1\n",
     r"bad\.txt: line 2, byte 4: b'\\xe9' is not valid utf-8 .*save the file as UTF-8"),
    ("three fields", b"good\t1\na\tb\t1\n", r"bad\.txt: line 2: 3 tab-separated field\(s\), expected 2 \(sentence, label\)"),
    ("no text field", b"good\t1\njust a sentence\n", r"bad\.txt: line 2: 1 tab-separated field\(s\), expected 2"),
    ("empty file", b"", r"bad\.txt: no data rows"),
])
def test_unreadable_files(tmp_path, name, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        tsv_dataset(path).load()["all"]  # files are read on first access


def test_a_missing_file_without_a_download_source(tmp_path):
    with pytest.raises(LstmLabError, match=r"^\S*nowhere\.tsv: file not found \(catalog entry sentiment_raw\)$"):
        corpus_from(tsv_dataset(tmp_path / "nowhere.tsv"), {**PARAMS, "data": {**PARAMS["data"], "download": True}})


def test_file_without_the_configured_columns(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text("review\tstars\ngreat\t1\n", encoding="utf-8")
    with pytest.raises(LstmLabError, match=r"reviews\.tsv: column 'sentence' not found; columns are "
                                           r"\['review', 'stars'\] \(set sentiment\.data\.text_column"):
        corpus_from(LabelledTextDataset(filepath=str(path)))
    with pytest.raises(DatasetError, match="header: false needs 'columns'"):
        LabelledTextDataset(filepath=str(path), header=False)


def test_skip_mode_drops_bad_rows_and_counts_them(tmp_path):
    good = synthetic_lines(60)
    path = tmp_path / "mixed.txt"
    path.write_text("\n".join([*good, "\t1", "  \t0", "no label\t", "odd label\tmaybe"]) + "\n", encoding="utf-8")
    params = {**PARAMS, "data": {**PARAMS["data"], "on_bad_rows": "skip"}}
    corpus, report = corpus_from(tsv_dataset(path), params)
    assert len(corpus) == 60
    assert report["skipped"] == {"missing_text": 0, "empty_text": 2, "missing_label": 1, "unknown_label": 1}
    assert report["skipped_total"] == 4


def test_named_labels_and_a_seeded_stratified_split(tmp_path):
    lines = synthetic_lines(400, seed=1)
    path = tmp_path / "named.csv"
    frame = pd.DataFrame([line.split("\t") for line in lines], columns=["text", "y"])
    frame["y"] = frame["y"].map({"0": "neg", "1": "pos"})
    frame.to_csv(path, index=False)
    params = {"data": {"text_column": "text", "label_column": "y", "labels": {"neg": 0, "pos": 1}},
              "split": {"val_fraction": 0.1, "test_fraction": 0.2, "seed": 7}}
    corpus, report = corpus_from(LabelledTextDataset(filepath=str(path)), params)
    assert report["rows"] == {"train": 280, "val": 40, "test": 80}
    for split in ("train", "val", "test"):  # stratified: both classes in the same proportion everywhere
        assert report["positive_fraction"][split] == pytest.approx(frame["y"].eq("pos").mean(), abs=0.01)
    assert sorted(corpus["text"]) == sorted(frame["text"])  # every row exactly once
    again, _ = corpus_from(LabelledTextDataset(filepath=str(path)), params)
    pd.testing.assert_frame_equal(corpus, again)  # seeded
    other, _ = corpus_from(LabelledTextDataset(filepath=str(path)), {**params, "split": {**params["split"], "seed": 8}})
    assert sorted(other.loc[other["split"] == "test", "text"]) != sorted(corpus.loc[corpus["split"] == "test", "text"])


def test_tokenizer_node_sees_the_training_split_only(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("\n".join(synthetic_lines(200, seed=2)) + "\n", encoding="utf-8")
    corpus, _ = corpus_from(tsv_dataset(path))
    tokenizer = nodes.fit_tokenizer(corpus, typed())
    stats = nodes.describe_text(corpus, tokenizer, typed())
    assert stats["train"]["oov_rate"] == 0.0 and stats["test"]["oov_rate"] > 0.0
    assert stats["vocab_size"] == len(tokenizer["vocab"]) <= 10_000
    assert {"length_p50", "length_p95", "length_max", "truncated_fraction"} <= set(stats["train"])


def phrase_corpus(path: Path) -> None:
    """A phrase-level file shaped like GLUE SST-2 train: 60 sentences, each with some of its constituents."""
    rows = []
    for i in range(60):
        label = i % 2
        word = ["dull", "moving"][label]
        sentence = f"film {i} is {word} , says critic {i % 4} ."
        rows += [(sentence, label), (f"film {i}", label), (f"is {word}", label), (word, label), ("film", label)]
    path.write_text("".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")


def test_sentence_holdout_makes_val_and_test_of_whole_sentences(tmp_path):
    path = tmp_path / "phrases.txt"
    phrase_corpus(path)
    corpus, report = corpus_from(tsv_dataset(path), {**PARAMS, "split": {"holdout": "sentences", "seed": 3}})
    held = report["holdout"]
    assert held["sentences"] == 60 and held["val_sentences"] == 6 and held["test_sentences"] == 6
    assert report["rows"] == {"train": 300 - 12 - held["dropped_rows"], "val": 6, "test": 6}
    for split in ("val", "test"):
        texts = corpus.loc[corpus["split"] == split, "text"]
        assert texts.str.endswith(" .").all()  # whole sentences only
        for sentence in texts:  # the phrase naming that sentence's film is gone from training
            assert sentence.split(" is ")[0] not in set(corpus.loc[corpus["split"] == "train", "text"])
    train = set(corpus.loc[corpus["split"] == "train", "text"])
    assert {"film", "dull", "moving", "is dull"} <= train  # shared with training sentences: kept
    again, _ = corpus_from(tsv_dataset(path), {**PARAMS, "split": {"holdout": "sentences", "seed": 3}})
    pd.testing.assert_frame_equal(corpus, again)


def vectors_file(path: Path, words, dim: int = 8, header: bool = False) -> Path:
    rng = np.random.default_rng(0)
    lines = [f"{len(words)} {dim}"] if header else []
    lines += [f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(0, 0.3, dim)) for w in words]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_training_data_reads_pretrained_vectors_and_logs_coverage(tmp_path, caplog):
    path = tmp_path / "r.txt"
    path.write_text("\n".join(synthetic_lines(200, seed=2)) + "\n", encoding="utf-8")
    corpus, _ = corpus_from(tsv_dataset(path))
    tokenizer = nodes.fit_tokenizer(corpus, typed())
    vocab = tokenizer["vocab"]
    file = vectors_file(tmp_path / "vec.txt", ["great", "awful", *vocab[10:30], "notinvocab"], header=True)
    p = typed({**PARAMS, "embedding": {"dim": 8, "vectors": {"path": str(file)}}})
    with caplog.at_level("INFO"):
        data = nodes.training_data(corpus, tokenizer, p)
    assert data["embedding_vectors"].shape == (len(vocab), 8) and data["embedding_found"].sum() == 22
    assert f"22 of {len(vocab) - 2} vocabulary words found" in caplog.text
    with pytest.raises(LstmLabError, match=r"vec\.txt: vectors of dimension 8, but sentiment\.embedding\.dim is 16"):
        nodes.training_data(corpus, tokenizer,
                            typed({**PARAMS, "embedding": {"dim": 16, "vectors": {"path": str(file)}}}))
    with pytest.raises(Exception, match="checksum 'abc'"):
        typed({**PARAMS, "embedding": {"vectors": {"path": str(file), "sha256": "abc"}}})


def test_ensemble_history_plots_the_members_mean():
    history = pd.DataFrame({"member": [0, 0, 0, 1, 1], "epoch": [0, 1, 2, 0, 1],
                            "train_loss": [0.6, 0.5, 0.4, 0.7, 0.5], "val_loss": [0.6, 0.55, 0.6, 0.65, 0.5],
                            "train_acc": [0.6] * 5, "val_acc": [0.7] * 5})
    figure = nodes.plot_learning_curves(history)
    assert "mean of 2 ensemble members" in figure.texts[0].get_text()
    line = figure.axes[0].lines[1]  # val_loss
    np.testing.assert_allclose(line.get_ydata(), [0.625, 0.525, 0.6])


def test_scores_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1).round(2)  # ties included
    s = binary_scores(y, p, 0.5)
    pred = (p > 0.5).astype(int)
    assert s["accuracy"] == pytest.approx(metrics.accuracy_score(y, pred))
    assert s["f1"] == pytest.approx(metrics.f1_score(y, pred))
    assert s["f1_macro"] == pytest.approx(metrics.f1_score(y, pred, average="macro"))
    assert s["precision"] == pytest.approx(metrics.precision_score(y, pred))
    assert s["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, p))
    assert s["log_loss"] == pytest.approx(metrics.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)))
    tn, fp, fn, tp = metrics.confusion_matrix(y, pred).ravel()
    assert s["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}


def test_length_bucketed_batches_are_seeded_and_cover_every_row():
    import torch
    from torch.utils.data import RandomSampler

    from lstm_lab.training.sentiment.module import BucketBatchSampler, SentimentDataModule

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, 5000)

    def epochs(seed):
        sampler = RandomSampler(range(5000), generator=torch.Generator().manual_seed(seed))
        batches = BucketBatchSampler(sampler, 32, False, lengths=lengths, pool=20, seed=seed)
        return [list(batches) for _ in range(2)], len(batches)

    (first, second), n = epochs(1)
    assert len(first) == n and sorted(i for b in first for i in b) == list(range(5000))
    assert first != second  # a new order every epoch ...
    assert epochs(1)[0] == [first, second]  # ... and the same sequence of orders on every run
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in first])
    assert spread < 5  # similar lengths share a batch (random batches would spread ~55)
    # The data module cuts each batch to its longest row.
    ids = np.zeros((100, 200), dtype=np.int32)
    for i, n_tokens in enumerate(rng.integers(1, 30, 100)):
        ids[i, 200 - n_tokens:] = rng.integers(2, 50, n_tokens)  # pre-padded, as the tokenizer writes them
    dm = SentimentDataModule({"train_ids": ids, "train_labels": np.ones(100), "val_ids": ids, "val_labels":
                              np.zeros(100)}, batch_size=16, seed=0)
    for x, lengths_b, y in dm.train_dataloader():
        assert x.shape[1] == int(lengths_b.max()) and (x[:, 0] != 0).all()


# ------------------------------------------------------------------------------------------------ download
class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep pytest's output clean
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """A real HTTP server on 127.0.0.1 (a free port) serving ``directory``; yields (base URL, request log)."""
    handler = type("Handler", (_CountingHandler,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             lambda *a, **kw: handler(*a, directory=str(directory), **kw))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url(name: str) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"  # nothing listens there: connection refused, as offline


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def sst2_dir():
    if not (SST2 / "test.tsv").is_file():
        pytest.skip(f"{SST2} not found")
    return SST2


def test_fetch_from_loopback_checks_and_caches(tmp_path, sst2_dir):
    source = sst2_dir / "test.tsv"
    dest = tmp_path / "raw" / "sst2" / "test.tsv"
    with serve(sst2_dir) as (base, requests):
        assert fetch(f"{base}/test.tsv", sha256(source), dest) == dest
        assert dest.read_bytes() == source.read_bytes()
        fetch(f"{base}/test.tsv", f"sha256:{sha256(source)}", dest)  # cached: checksum ok, no request
        assert requests == ["/test.tsv"]
        md5 = hashlib.md5(source.read_bytes()).hexdigest()
        assert md5 == "268856b487b2a31a28c0a93daaff7288"  # GLUE SST-2 dev.tsv, as torchtext lists it
        other = tmp_path / "md5" / "test.tsv"
        fetch(f"{base}/test.tsv", f"md5:{md5}", other)
        assert other.read_bytes() == source.read_bytes()


def test_checksum_mismatch_saves_nothing(tmp_path, sst2_dir):
    dest = tmp_path / "raw" / "test.tsv"
    with serve(sst2_dir) as (base, _):
        with pytest.raises(LstmLabError, match=r"downloaded sha256 [0-9a-f]{64} does not match the expected 0{64} "
                                               r"\(nothing was saved to .*test\.tsv\)"):
            fetch(f"{base}/test.tsv", "0" * 64, dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temporary file left behind either
    with pytest.raises(LstmLabError, match="expected 'sha256:<64 hex digits>' or 'md5:<32 hex digits>'"):
        parse_checksum("sha1:abc")


def test_offline_the_message_says_where_to_put_the_files(tmp_path):
    source = Source(closed_port_url("SST-2.zip"), "sha256:" + "a" * 64, tmp_path / "sst2" / "SST-2.zip",
                    {"SST-2/train.tsv": tmp_path / "sst2" / "SST-2" / "train.tsv"})
    with pytest.raises(DownloadError) as info:
        ensure([source])
    message = str(info.value)
    assert "\n" not in message
    assert re.search(r"SST-2\.zip: download failed \(.*refused.*\); offline, put the file at .*sst2/SST-2\.zip by "
                     r"hand \(sha256 a{64}\) or its extracted files at .*sst2/SST-2/train\.tsv", message), message
    assert not (tmp_path / "sst2" / "SST-2.zip").exists()


def test_dataset_downloads_a_zip_and_extracts_it(tmp_path, sst2_dir):
    """The default catalog's shape (SST-2.zip → SST-2/train.tsv, SST-2/dev.tsv), served from loopback."""
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "SST-2.zip", "w") as zf:
        train = (sst2_dir / "dev.tsv").read_text(encoding="utf-8").splitlines()[:301]  # header + 300 rows
        zf.writestr("SST-2/train.tsv", "\n".join(train) + "\n")
        zf.write(sst2_dir / "test.tsv", "SST-2/dev.tsv")
    raw = tmp_path / "data" / "01_raw" / "sst2"
    with serve(served) as (base, requests):
        dataset = LabelledTextDataset(
            files={"train": str(raw / "SST-2/train.tsv"), "test": str(raw / "SST-2/dev.tsv")},
            download={"url": f"{base}/SST-2.zip", "checksum": f"sha256:{sha256(served / 'SST-2.zip')}",
                      "to": str(raw / "SST-2.zip"),
                      "extract": {"SST-2/train.tsv": str(raw / "SST-2/train.tsv"),
                                  "SST-2/dev.tsv": str(raw / "SST-2/dev.tsv")}},
        )
        with pytest.raises(LstmLabError, match=r"SST-2/train\.tsv: file not found\. .* run with "
                                               r"--params=sentiment\.data\.download=true to fetch it from "
                                               r"http://127\.0\.0\.1:\d+/SST-2\.zip \(checksummed\)"):
            nodes.load_corpus(dataset.load(), typed())  # not asked to download: no request
        assert requests == [] and not raw.exists()
        asked = {**PARAMS, "data": {**PARAMS.get("data", {}), "download": True}}
        corpus, report = nodes.load_corpus(dataset.load(), typed(asked))
        frames = dataset.load()
        assert len(frames["train"]) == 300 and len(frames["test"]) == 872
        nodes.load_corpus(dataset.load(), typed(asked))  # everything cached now
        assert requests == ["/SST-2.zip"]
    assert report["rows"] == {"train": 270, "val": 30, "test": 872}


def test_dataset_downloads_plain_files(tmp_path, sst2_dir):
    raw = tmp_path / "raw"
    with serve(sst2_dir) as (base, requests):
        dataset = LabelledTextDataset(
            files={"val": str(raw / "dev.tsv"), "test": str(raw / "test.tsv"), "train": str(raw / "dev.tsv")},
            download=[{"url": f"{base}/{name}", "checksum": sha256(sst2_dir / name), "to": str(raw / name)}
                      for name in ("dev.tsv", "test.tsv")],
        )
        frames = dataset.load()
        assert frames.missing() == [raw / "dev.tsv", raw / "test.tsv", raw / "dev.tsv"]
        frames.download()
    assert sorted(requests) == ["/dev.tsv", "/test.tsv"] and frames.missing() == []
    assert len(frames["val"]) == 6_735 and len(frames["test"]) == 872


# ------------------------------------------------------------------------------------------------ end to end
TINY = {
    "sentiment": {
        "data": {"class_names": ["negative", "positive"]},
        "split": {"val_fraction": 0.15, "test_fraction": 0.15},
        "text": {"max_length": 40},
        "embedding": {"dim": 8},
        "model": {"hidden_sizes": [8]},
        "training": {"max_epochs": 2, "batch_size": 32, "early_stopping_patience": 2, "num_threads": 1},
    }
}
CATALOG = {"sentiment_raw": {"type": "lstm_lab.datasets.LabelledTextDataset", "filepath": "data/01_raw/reviews.txt",
                             "header": False, "columns": ["sentence", "label"]}}
KEPT = ["data/06_models/sentiment_model.ckpt", "data/06_models/sentiment_tokenizer.json",
        "data/08_reporting/sentiment_metrics.json", "data/02_intermediate/sentiment_corpus.parquet"]


def reviews() -> str:
    return "\n".join(uci_lines("yelp", 300) + uci_lines("amazon_cells", 200)) + "\n"


def run_in_process(root: Path):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro.runner import SequentialRunner

    bootstrap_project(root)
    with KedroSession.create(project_path=root, env="local") as session:
        return session.run(pipeline_names=["sentiment"], runner=SequentialRunner())


def run_tiny_project(folder, params: dict):
    """A project whose sentiment run on 500 UCI sentences (``params``: its local parameters) has succeeded."""
    root = make_project(folder / "project", local_params=None)
    write_yaml(root / "conf/local/parameters_sentiment.yml", params)
    write_yaml(root / "conf/local/catalog.yml", CATALOG)
    (root / "data/01_raw/reviews.txt").write_text(reviews(), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        run_in_process(root)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One successful run on 500 UCI sentences; the bad-input cases then fail against its outputs."""
    return run_tiny_project(tmp_path_factory.mktemp("sentiment"), TINY)


@pytest.mark.slow
def test_end_to_end_metrics_mlflow_and_served_model(project, monkeypatch):
    import mlflow

    metrics = json.loads((project / "data/08_reporting/sentiment_metrics.json").read_text())
    assert metrics["n"] == 75  # 15 % of 500, stratified
    for key in ("accuracy", "f1", "roc_auc", "precision", "recall", "log_loss"):
        assert 0 <= metrics[key] <= max(1, metrics["log_loss"]), key
    assert sum(metrics["confusion"].values()) == 75
    for png in ("sentiment_learning_curves.png", "sentiment_confusion_matrix.png"):
        assert (project / "data/08_reporting" / png).stat().st_size > 1000
    history = pd.read_csv(project / "data/08_reporting/sentiment_history.csv")
    assert history["epoch"].tolist() == [1, 2] and {"train_loss", "val_loss", "val_acc"} <= set(history)
    tokenizer = json.loads((project / "data/06_models/sentiment_tokenizer.json").read_text())
    assert tokenizer["vocab"][:2] == ["<pad>", "<oov>"] and tokenizer["config"]["max_length"] == 40

    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("sentiment")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name.startswith("sentiment lstm[8]")
    assert run.data.params["model.hidden_sizes"] == "[8]" and run.data.params["embedding.dim"] == "8"
    for key in ("train_loss", "val_loss", "val_acc", "train_acc"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.metrics["test_roc_auc"] == pytest.approx(metrics["roc_auc"])
    assert run.data.metrics["text_vocab_size"] == len(tokenizer["vocab"])
    assert 0 < run.data.metrics["text_test_oov_rate"] < 1 and run.data.metrics["text_train_length_p95"] > 0
    assert run.data.metrics["data_rows_train"] == 350
    artifacts = {f.path for d in ("model", "plots", "reports") for f in client.list_artifacts(run.info.run_id, d)}
    assert {"model/sentiment_model.ckpt", "model/sentiment_tokenizer.json", "reports/sentiment_metrics.json",
            "reports/sentiment_text_stats.json", "reports/sentiment_history.csv",
            "plots/sentiment_confusion_matrix.png", "plots/sentiment_learning_curves.png"} <= artifacts

    info = json.loads((project / "data/06_models/sentiment_model_info.json").read_text())
    assert info["model_uri"] == f"runs:/{run.info.run_id}/sentiment_model"
    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(info["model_uri"])
    assert model.metadata.signature is not None and model.metadata.saved_input_example_info is not None
    sentences = ["The food was wonderful and the staff were lovely!", "Terrible. Cold food, rude waiter."]
    out = model.predict(sentences)
    assert list(out.columns) == ["probability", "label"] and len(out) == 2
    assert ((out["probability"] >= 0) & (out["probability"] <= 1)).all()
    assert set(out["label"]) <= {"negative", "positive"}
    same = model.predict(pd.DataFrame({"text": sentences}))
    np.testing.assert_allclose(same["probability"], out["probability"])
    # The served model and the evaluation node agree on the test sentences.
    predictions = pd.read_csv(project / "data/07_model_output/sentiment_predictions.csv")
    served = model.predict(predictions["text"].tolist())
    np.testing.assert_allclose(served["probability"], predictions["probability"], atol=1e-6)
    with pytest.raises(Exception, match="row 1: empty text"):
        model.predict(["fine", "   "])

    # What a user runs: `mlflow models predict` on a CSV of raw text, in this environment.
    import subprocess

    from tests.conftest import BIN, project_env

    csv_path, out_path = project / "reviews.csv", project / "predictions.json"
    pd.DataFrame({"text": sentences}).to_csv(csv_path, index=False)
    done = subprocess.run(
        [str(BIN / "mlflow"), "models", "predict", "-m", info["model_uri"], "-i", str(csv_path), "-t", "csv",
         "--env-manager", "local", "-o", str(out_path)],
        cwd=project, env=project_env({"MLFLOW_TRACKING_URI": uri}), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    served_cli = pd.DataFrame(json.loads(out_path.read_text())["predictions"])
    np.testing.assert_allclose(served_cli["probability"], out["probability"], atol=1e-6)
    assert served_cli["label"].tolist() == out["label"].tolist()


def break_file(root: Path, how: str) -> None:
    path = root / "data/01_raw/reviews.txt"
    text = reviews()
    if how == "non-UTF-8 bytes":
        path.write_bytes(text.encode("utf-8") + b"caf\xe9 au lait\t1\n")
        return
    if how == "empty text":
        text += "\t1\n"
    elif how == "missing label":
        text += "no label here\t\n"
    elif how == "label outside the mapping":
        text += "maybe good\t5\n"
    path.write_text(text, encoding="utf-8")


CLI_CASES = [
    ("non-UTF-8 bytes", r"reviews\.txt: line 501, byte 4: b'\\xe9' is not valid utf-8"),
    ("no data, no download asked for",
     r"data/01_raw/sst2/SST-2/train\.tsv: file not found\. .*run with "
     r"--params=sentiment\.data\.download=true to fetch it from https://\S+/SST-2\.zip"),
    ("offline download", r"download failed \(.*\); offline, put the file at data/01_raw/sst2/SST-2\.zip by hand "
                         r"\(sha256 [0-9a-f]{64}\) or its extracted files at data/01_raw/sst2/SST-2/train\.tsv"),
]


def snapshot(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in KEPT}


@pytest.mark.slow
@pytest.mark.parametrize("how,message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_input_via_the_cli(project, how, message):
    kept = snapshot(project)
    catalog = project / "conf/local/catalog.yml"
    try:
        if how == "no data, no download asked for":  # the default catalog entry: its real URL is never tried
            write_yaml(catalog, {})
            done = kedro(project, "--pipelines=sentiment")
        elif how == "offline download":  # the default catalog entry, its URL pointing where nothing answers
            import yaml

            base = yaml.safe_load((project / "conf/base/catalog_sentiment.yml").read_text())["sentiment_raw"]
            base["download"]["url"] = closed_port_url("SST-2.zip")
            write_yaml(catalog, {"sentiment_raw": base})
            done = kedro(project, "--pipelines=sentiment", "--params=sentiment.data.download=true")
        else:
            break_file(project, how)
            done = kedro(project, "--pipelines=sentiment")
    finally:
        write_yaml(catalog, CATALOG)
        break_file(project, "restore")
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and re.search(message, last), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert snapshot(project) == kept, "a failed run overwrote an earlier output"
    assert not (project / "data/01_raw/sst2/SST-2.zip").exists()


@pytest.mark.slow
@pytest.mark.parametrize("how,message", [
    ("empty text", r"reviews\.txt: line 501: empty text"),
    ("missing label", r"reviews\.txt: line 501: missing label"),
    ("label outside the mapping", r"reviews\.txt: line 501: label '5' is not in sentiment\.data\.labels"),
])
def test_bad_rows_in_process_leave_outputs_alone(project, monkeypatch, how, message):
    kept = snapshot(project)
    monkeypatch.chdir(project)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        break_file(project, how)
        with pytest.raises(LstmLabError, match=message):
            run_in_process(project)
    finally:
        break_file(project, "restore")
    assert snapshot(project) == kept
    client = mlflow_client(project)
    runs = client.search_runs([client.get_experiment_by_name("sentiment").experiment_id],
                              filter_string="attributes.status = 'FAILED'")
    assert any(re.search(message, r.data.tags.get("error", "")) for r in runs)


def test_default_conf_parameters_validate():
    """conf/base/parameters_sentiment.yml is valid and says what the issue asks for."""
    import yaml

    from lstm_lab.params import validate

    repo = REPO
    raw = yaml.safe_load((repo / "conf/base/parameters_sentiment.yml").read_text())["sentiment"]
    p = validate("sentiment", raw)
    assert p.text.max_size == 10_000 and p.text.max_length == 200 and p.embedding.dim == 100
    assert p.model.hidden_sizes == [128] and p.data.labels == {"0": 0, "1": 1}
    assert p.split.holdout == "phrases" and p.embedding.vectors is None and p.ensemble == 1 and p.weight_drop == 0
    # conf/sst2 (the benchmark's recipe) validates on top of it
    sst2 = yaml.safe_load((repo / "conf/sst2/parameters_sentiment.yml").read_text())["sentiment"]
    merged = validate("sentiment", {**raw, **{k: {**raw.get(k, {}), **v} if isinstance(v, dict) else v
                                              for k, v in sst2.items()}})
    assert merged.split.holdout == "sentences" and merged.model.bidirectional
    catalog = yaml.safe_load((repo / "conf/base/catalog_sentiment.yml").read_text())
    download = catalog["sentiment_raw"]["download"]
    assert download["to"].startswith("data/01_raw/sst2/") and parse_checksum(download["checksum"])[0] == "sha256"
    assert os.path.basename(download["url"]) == "SST-2.zip"


# ------------------------------------------------------------------------------------------------------ subwords
def test_a_tokenizer_fitted_without_the_configured_subwords_is_refused(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("\n".join(synthetic_lines(200, seed=2)) + "\n", encoding="utf-8")
    corpus, _ = corpus_from(tsv_dataset(path))
    with_subwords = typed({**PARAMS, "embedding": {"subwords": {"buckets": 256}}})
    stale = nodes.fit_tokenizer(corpus, typed())
    with pytest.raises(LstmLabError, match="re-run the prepare stage"):
        nodes.training_data(corpus, stale, with_subwords)
    data = nodes.training_data(corpus, nodes.fit_tokenizer(corpus, with_subwords), with_subwords)
    for split in ("train", "val"):  # type ids, each pointing into its split's table
        assert data[f"{split}_ids"].max() < len(data[f"{split}_subwords"])
        assert int(data[f"{split}_subwords"][:, 1:].max()) <= 256
    assert "train_subwords" not in nodes.training_data(corpus, stale, typed())


@pytest.fixture(scope="module")
def subword_project(tmp_path_factory):
    """The end-to-end run with subwords on (hashed into 1024 buckets)."""
    tiny = {"sentiment": {**TINY["sentiment"], "embedding": {"dim": 8, "subwords": {"buckets": 1024}}}}
    return run_tiny_project(tmp_path_factory.mktemp("sentiment_subwords"), tiny)


@pytest.mark.slow
def test_end_to_end_with_subwords_serves_what_the_pipeline_scored(subword_project, monkeypatch):
    import mlflow
    import torch

    from lstm_lab.data.text import Tokenizer

    project = subword_project
    tokenizer = json.loads((project / "data/06_models/sentiment_tokenizer.json").read_text())
    assert tokenizer["subwords"] == {"min_n": 3, "max_n": 5, "buckets": 1024}
    checkpoint = torch.load(project / "data/06_models/sentiment_model.ckpt", weights_only=True)
    assert checkpoint["state_dict"]["net.ngrams.weight"].shape == (1025, 8)
    predictions = pd.read_csv(project / "data/07_model_output/sentiment_predictions.csv")
    tok = Tokenizer.from_dict(tokenizer)
    assert tok.stats(predictions["text"].tolist())["oov_rate"] > 0  # the test split has words training never saw
    info = json.loads((project / "data/06_models/sentiment_model_info.json").read_text())
    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(info["model_uri"])
    served = model.predict(predictions["text"].tolist())
    np.testing.assert_allclose(served["probability"], predictions["probability"], atol=1e-6)
    # One at a time (each request its own type table) the answers are the same.
    np.testing.assert_allclose([model.predict([t])["probability"].iloc[0] for t in predictions["text"][:5]],
                               predictions["probability"][:5], atol=1e-6)
