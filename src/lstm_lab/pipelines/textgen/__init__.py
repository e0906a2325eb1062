"""Character-level text generation: tokenisation, a stacked char-LSTM language model, sampling."""
