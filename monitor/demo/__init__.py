"""The embedded default: a real-text corpus, its golden questions and a FAISS index, for
`ragmon demo` and tests."""
