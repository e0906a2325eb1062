"""Schema of every ``tune_<pipeline>:`` parameters section (validated by the hooks before anything runs)."""

from lstm_lab.tuning.config import TuneParams

SCHEMA = TuneParams
