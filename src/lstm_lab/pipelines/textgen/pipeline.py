"""The textgen pipeline. Tags split it where DVC stages split it: ``prepare`` | ``train`` ``evaluate``."""

from kedro.pipeline import Pipeline, node, pipeline

from lstm_lab.pipelines.textgen import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(nodes.load_corpus, ["textgen_corpus", "params:textgen"], "textgen_text", name="textgen_load_corpus",
                 tags=["prepare"]),
            node(nodes.build_vocabulary, ["textgen_text", "params:textgen"], "textgen_vocab",
                 name="textgen_build_vocabulary", tags=["prepare"]),
            node(nodes.encode_corpus, ["textgen_text", "textgen_vocab", "params:textgen"],
                 ["textgen_ids", "textgen_split"], name="textgen_encode_corpus", tags=["prepare"]),
            node(nodes.training_data, ["textgen_ids", "textgen_split", "textgen_vocab", "params:textgen"],
                 "textgen_training_data", name="textgen_training_data", tags=["train"]),
            node(
                nodes.train_char_lm,
                ["textgen_training_data", "params:textgen"],
                ["textgen_model", "textgen_history"],
                name="train_char_lm",
                tags=["train"],
            ),
            node(nodes.evaluate_char_lm, ["textgen_model", "textgen_ids", "textgen_split", "params:textgen"],
                 "textgen_metrics", name="evaluate_char_lm", tags=["evaluate"]),
            node(nodes.sample_text, ["textgen_model", "params:textgen"], "textgen_samples", name="textgen_sample_text",
                 tags=["evaluate"]),
            node(nodes.plot_learning_curves, "textgen_history", "textgen_learning_curves",
                 name="plot_textgen_learning_curves", tags=["evaluate"]),
            node(nodes.log_serving_model, ["textgen_model", "textgen_metrics", "params:textgen"], None,
                 name="register_textgen_model", tags=["evaluate"]),
        ]
    )
