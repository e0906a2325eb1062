"""The textgen pipeline end to end on the first 20k characters of tinyshakespeare, generation from the saved
model, and bad input (one ``Error:`` line, exit 1) through ``kedro run`` and ``lstm-lab-generate``."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.runner import SequentialRunner

from lstm_lab.data.chars import CharVocab
from lstm_lab.serving import generate as cli
from tests.conftest import BIN, SHARED, kedro, make_project, mlflow_client, project_env, write_yaml

CORPUS = SHARED / "tinyshakespeare" / "input.txt"
N_CHARS = 20_000
TINY_TEXTGEN = {
    "textgen": {
        "window": {"length": 32},
        "embedding": {"dim": 8},
        "model": {"hidden_sizes": [16], "dropout": 0.0, "head_dropout": 0.0},
        "training": {"max_epochs": 2, "batch_size": 8, "early_stopping_patience": 2, "num_threads": 1,
                     "learning_rate": 0.01},
        "sampling": {"prompts": ["\n", "ROMEO:"], "length": 60, "temperatures": [0.8], "top_k": 10},
    }
}



def new_project(root, text: str | None, params=TINY_TEXTGEN):
    make_project(root, local_params=None)
    write_yaml(root / "conf/local/parameters_textgen.yml", params)
    if text is not None:
        path = root / "data/01_raw/tinyshakespeare/input.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def corpus_head(n: int = N_CHARS) -> str:
    """The first ``n`` characters of tinyshakespeare: only the trained-model tests need the real corpus."""
    if not CORPUS.is_file():
        pytest.skip(f"{CORPUS} absent (../shared/data)")
    return CORPUS.read_text(encoding="utf-8")[:n]


def synthetic_text(n: int, seed: int = 0) -> str:
    """A play-like text made up here (speaker lines, words, punctuation; every character the sampling prompts
    use), for the tests of bad input and of the pipeline's mechanics, which need no real corpus."""
    rng = np.random.default_rng(seed)
    words = ["the", "light", "what", "doth", "thou", "art", "and", "so", "fair", "night", "o", "my", "love", "is",
             "here", "speak", "again", "sweet", "good", "morrow"]
    parts = []
    while sum(map(len, parts)) < n:
        speaker = rng.choice(["ROMEO", "JULIET", "NURSE", "FRIAR"])
        line = " ".join(rng.choice(words, size=int(rng.integers(4, 10)))).capitalize()
        parts.append(f"{speaker}:\n{line}{rng.choice(['.', ',', '!', '?'])}\n\n")
    return "".join(parts)[:n]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One in-process ``kedro run --pipelines=textgen``; the tests below read what it left behind."""
    root = new_project(tmp_path_factory.mktemp("textgen") / "project", corpus_head())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        threads = torch.get_num_threads()
        bootstrap_project(root)
        with KedroSession.create(project_path=root, env="local") as session:
            session.run(pipeline_names=["textgen"], runner=SequentialRunner())
        torch.set_num_threads(threads)
    return root


def test_prepare_outputs(trained):
    vocab = CharVocab.load(trained / "data/05_model_input/textgen_vocab.json")
    split = json.loads((trained / "data/05_model_input/textgen_split.json").read_text())
    ids = np.load(trained / "data/05_model_input/textgen_ids.npy")
    text = corpus_head()
    assert split["train_end"] == 18_000 and split["n_chars"] == N_CHARS and split["vocab_size"] == vocab.size
    assert vocab.chars == tuple(sorted(set(text[:18_000])))  # training split only
    assert ids.dtype == np.uint8 and len(ids) == N_CHARS and vocab.decode(ids[:200]) == text[:200]


def test_metrics_history_and_mlflow_run(trained):
    metrics = json.loads((trained / "data/08_reporting/textgen_metrics.json").read_text())
    assert {"val_loss_nats", "val_bits_per_char"} <= set(metrics)
    nats = metrics["val_loss_nats"]
    assert metrics["val_bits_per_char"] == pytest.approx(nats / math.log(2))
    assert 1.0 < nats < math.log(metrics["vocab_size"])  # learnt something: below the uniform guess

    client = mlflow_client(trained)
    experiment = client.get_experiment_by_name("textgen")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["window.length"] == "32" and run.data.params["model.hidden_sizes"] == "[16]"
    assert run.info.run_name.startswith("textgen T=32 lstm[16]")
    for key in ("train_loss", "val_loss", "val_bits_per_char"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1, 2], key  # one point per epoch, step = epochs trained
    val = client.get_metric_history(run.info.run_id, "val_loss")
    bits = client.get_metric_history(run.info.run_id, "val_bits_per_char")
    for v, b in zip(val, bits, strict=True):
        assert b.value == pytest.approx(v.value / math.log(2), rel=1e-5)
    # The evaluate node re-scores the best checkpoint by the training protocol: the same number.
    assert nats == pytest.approx(min(m.value for m in val), rel=1e-4)
    assert run.data.metrics["final_val_loss_nats"] == pytest.approx(nats)
    assert run.data.metrics["final_val_bits_per_char"] == pytest.approx(metrics["val_bits_per_char"])
    artifacts = {f.path for d in ("model", "samples", "reports", "plots", "data")
                 for f in client.list_artifacts(run.info.run_id, d)}
    assert {"model/textgen_model.ckpt", "model/textgen_vocab.json", "samples/textgen_samples.md",
            "reports/textgen_metrics.json", "reports/textgen_history.csv", "plots/textgen_learning_curves.png",
            "data/textgen_split.json"} <= artifacts


def test_samples_report(trained):
    samples = (trained / "data/08_reporting/textgen_samples.md").read_text(encoding="utf-8")
    assert samples.count("## prompt") == 4  # 2 prompts x (greedy + 1 temperature)
    assert "## prompt 'ROMEO:', greedy (argmax)" in samples and "temperature 0.8, top-k 10" in samples
    assert "\ufffd" not in samples  # UNK is never generated


def test_generate_from_the_saved_model(trained, capsys):
    model = str(trained / "data/06_models/textgen_model.ckpt")
    vocab = str(trained / "data/05_model_input/textgen_vocab.json")
    args = ["--model", model, "--vocab", vocab, "--prompt", "ROMEO:", "--length", "80", "--temperature", "0.8",
            "--top-k", "20", "--seed", "1"]
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 80 + 1  # + the final newline
    assert cli.main(args) == 0 and capsys.readouterr().out == first  # seeded: reproducible
    assert cli.main([*args[:-1], "2"]) == 0 and capsys.readouterr().out != first
    assert cli.main(["--model", model, "--prompt", "ROMEO:", "--length", "40", "--greedy"]) == 0
    greedy = capsys.readouterr().out
    assert cli.main(["--model", model, "--prompt", "ROMEO:", "--length", "40", "--top-k", "1", "--seed", "5"]) == 0
    assert capsys.readouterr().out == greedy  # top-k 1 is argmax


@pytest.mark.parametrize("extra,message", [
    (["--prompt", "ROMEO: \u00e9"],
     r"the prompt contains 1 character\(s\) never seen in the training text: 'é' \(U\+00E9\)"),
    (["--temperature", "0"], "temperature must be > 0"),
    (["--temperature", "-0.5"], "temperature must be > 0"),
    (["--top-k", "0"], "top_k must be >= 1"),
    (["--prompt", ""], "prompt is empty"),
    (["--length", "-1"], "--length must be >= 0"),
])
def test_generate_bad_input(trained, capsys, extra, message):
    assert cli.main(["--model", str(trained / "data/06_models/textgen_model.ckpt"), *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1
    assert __import__("re").search(message, err), err


def test_generate_bad_files(trained, tmp_path, capsys):
    assert cli.main(["--model", str(tmp_path / "absent.ckpt")]) == 1
    assert "model checkpoint not found" in capsys.readouterr().err
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    assert cli.main(["--model", str(tmp_path / "junk.ckpt")]) == 1
    assert "not a plain model checkpoint" in capsys.readouterr().err
    other = tmp_path / "vocab.json"
    CharVocab.build("abc").save(other)
    assert cli.main(["--model", str(trained / "data/06_models/textgen_model.ckpt"), "--vocab", str(other)]) == 1
    assert "not the vocabulary" in capsys.readouterr().err
    forecast = tmp_path / "forecast.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"horizon": 3}}, forecast)
    assert cli.main(["--model", str(forecast)]) == 1
    assert "not a textgen model checkpoint" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- CLI (subprocess)
def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return errors[0]


# Bad input through the nodes and the parameter schema (fast), then through `kedro run` (slow, below).
def test_prepare_rejects_bad_corpora(tmp_path):
    from lstm_lab.datasets import TextSource
    from lstm_lab.errors import LstmLabError
    from lstm_lab.pipelines.textgen import nodes

    from tests.conftest import deep_merge, typed_params

    params = typed_params("textgen", TINY_TEXTGEN["textgen"])  # what the nodes receive in the project run
    with pytest.raises(LstmLabError, match=r"absent.txt: corpus not found\. .*--params=textgen.data.download=true"):
        nodes.load_corpus(TextSource(tmp_path / "absent.txt"), params)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(LstmLabError, match="the corpus is empty"):
        nodes.load_corpus(TextSource(tmp_path / "empty.txt"), params)
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(LstmLabError, match="not valid utf-8 text"):
        nodes.load_corpus(TextSource(tmp_path / "latin1.txt"), params)

    # The opt-in download: fetched (here from a file:// URL, offline) only when absent, checked against sha256.
    from lstm_lab.data.download import sha256_of

    dest = tmp_path / "raw" / "input.txt"
    source_file = tmp_path / "upstream.txt"
    source_file.write_text(synthetic_text(500), encoding="utf-8")
    data = {"download": True, "url": source_file.as_uri(), "sha256": sha256_of(source_file)}
    with_download = typed_params("textgen", deep_merge(TINY_TEXTGEN["textgen"], {"data": data}))
    assert nodes.load_corpus(TextSource(dest), with_download) == synthetic_text(500)
    assert dest.read_text(encoding="utf-8") == synthetic_text(500)
    with pytest.raises(LstmLabError, match="does not match the expected 0000"):
        nodes.load_corpus(TextSource(tmp_path / "other.txt"),
                          with_download.model_copy(update={"data": with_download.data.model_copy(update={"sha256": "0" * 64})}))
    assert not (tmp_path / "other.txt").exists()

    def prepare(text, p=params):
        return nodes.encode_corpus(text, nodes.build_vocabulary(text, p), p)

    with pytest.raises(LstmLabError, match=r"training split has 27 characters, fewer than one training window "
                                           r"\(window.length \+ 1 = 33\)"):
        prepare("ab\n" * 10)
    with pytest.raises(LstmLabError, match=r"prompts entry 'ROMEO:' contains 5 character\(s\) never seen"):
        prepare("abc\n" * 100)
    ids, split = prepare("ROMEO:\n" * 100)
    assert split["train_end"] == 630 and ids.dtype == np.uint8


@pytest.mark.parametrize("change,message", [
    ({"sampling": {"temperatures": [0.0]}}, "textgen.sampling: Value error, temperatures must be > 0"),
    ({"sampling": {"top_k": 0}}, "textgen.sampling.top_k: Input should be greater than or equal to 1"),
    ({"sampling": {"prompts": [""]}}, "prompts must not be empty"),
    ({"model": {"bidirectional": True}}, "reads left to right"),
    ({"window": {"length": 0}}, "textgen.window.length: Input should be greater than or equal to 1"),
    ({"split": {"train_fraction": 1.0}}, "textgen.split.train_fraction: Input should be less than 1"),
    ({"window": {"lenght": 8}}, "textgen.window.lenght: unknown parameter"),
])
def test_bad_parameters_are_named(change, message):
    import yaml

    from lstm_lab.errors import LstmLabError
    from lstm_lab.params import validate
    from tests.conftest import REPO

    raw = yaml.safe_load((REPO / "conf/base/parameters_textgen.yml").read_text())["textgen"]
    validate("textgen", raw)  # the shipped config is valid
    for section, values in change.items():
        raw[section] = {**raw[section], **values}
    with pytest.raises(LstmLabError, match=message):
        validate("textgen", raw)


@pytest.mark.slow
def test_kedro_cli_bad_input_then_tagged_runs_then_console_script(tmp_path):
    """As a user types it, in one project (one tracking DB): a fresh clone without the corpus, a corpus too
    short, then the DVC-style split (prepare; train + evaluate), then ``lstm-lab-generate`` from the saved model."""
    root = new_project(tmp_path / "project", None)
    done = kedro(root, "--pipelines=textgen")
    line = one_error_line(done)
    assert __import__("re").search(r"input.txt: corpus not found\. Put a plain-text corpus there .*"
                                   r"--params=textgen.data.download=true to fetch tinyshakespeare", line), line
    corpus = root / "data/01_raw/tinyshakespeare/input.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text("ab\n" * 10, encoding="utf-8")
    line = one_error_line(kedro(root, "--pipelines=textgen"))
    assert "the training split has 27 characters, fewer than one training window" in line, line
    assert not (root / "data/06_models/textgen_model.ckpt").exists()

    corpus.write_text(synthetic_text(6_000), encoding="utf-8")
    done = kedro(root, "--pipelines=textgen", "--tags=prepare")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (root / "data/05_model_input/textgen_ids.npy").is_file()
    assert not (root / "data/06_models/textgen_model.ckpt").exists()
    done = kedro(root, "--pipelines=textgen", "--tags=train,evaluate", "--params=textgen.training.max_epochs=1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(json.loads((root / "data/08_reporting/textgen_metrics.json").read_text())) >= {
        "val_loss_nats", "val_bits_per_char"}
    runs = mlflow_client(root).search_runs([mlflow_client(root).get_experiment_by_name("textgen").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FAILED", "FINISHED", "FINISHED"]

    def generate(*args):
        return subprocess.run([str(BIN / "lstm-lab-generate"), "--model", "data/06_models/textgen_model.ckpt", *args],
                              cwd=root, env=project_env(), capture_output=True, text=True, timeout=120)

    gen = generate("--vocab", "data/05_model_input/textgen_vocab.json", "--prompt", "ROMEO:", "--length", "50",
                   "--temperature", "0.8", "--top-k", "20", "--seed", "1")
    assert gen.returncode == 0, gen.stderr[-2000:]
    assert gen.stdout.startswith("ROMEO:") and len(gen.stdout) == 6 + 50 + 1
    assert "never seen in the training text: '~'" in one_error_line(generate("--prompt", "ROMEO~"))
