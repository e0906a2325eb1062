"""The summary printed at the end of a run: tables for rows of one kind, one line per unrelated group."""

from lstm_lab.run_summary import format_summary, score_lines


def test_models_side_by_side_and_unrelated_groups_one_line_each():
    forecast = score_lines("forecast_metrics", {"lstm": {"mse": 0.342, "mae": 0.45}, "naive": {"mse": 4.57, "mae": 1.7}})
    assert forecast[0].split() == ["forecast_metrics", "mse", "mae"]
    assert forecast[1].split() == ["lstm", "0.342", "0.45"]
    report = score_lines("report", {"rows": {"train": 2400, "val": 300}, "skipped": {"empty_text": 0},
                                    "skipped_total": 0})
    assert report == ["  report:", "    rows: train 2400, val 300", "    skipped: empty_text 0",
                      "  report: skipped_total 0"]


def test_summary_names_files_and_the_mlflow_run(tmp_path):
    lines = format_summary("forecast", 12.3, {}, [tmp_path / "data/08_reporting/m.json"], tmp_path, "abc", "1",
                           f"sqlite:///{tmp_path}/mlflow.db")
    assert lines[0] == "Run summary: forecast finished in 12.3 s"
    assert "  data/08_reporting/: m.json" in lines
    assert any("mlflow ui --backend-store-uri sqlite:///" in line and "runs/abc" in line for line in lines)
