"""The bad-input corpus: the broken files the labs meet, made on demand (see corpus.py)."""
