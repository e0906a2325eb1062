"""Sentiment classification: labelled text → tokenizer → Embedding + LSTM classifier → metrics + pyfunc model."""
