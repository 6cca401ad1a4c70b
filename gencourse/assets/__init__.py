"""Data files shipped with the library (text corpus, trained weights)."""
