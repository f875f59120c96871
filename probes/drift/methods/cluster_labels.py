"""Labels for the clusters that moved: the rows that made a cluster move, the text nearest
their centre, and the terms that set their texts apart.

A cluster is fitted on the reference, so a topic new to the reference lands in whichever
reference cluster lies nearest, and that cluster's reference texts are about something
else. A grown cluster is therefore labelled from the current rows that made it grow: of its
current members, the ``excess`` (current count minus what the reference share predicts)
where the current window is densest relative to the reference (largest MMD witness). A
shrunk cluster is labelled the same way from the reference rows it lost (smallest
witness), which the current window cannot show.

Distinctive terms are class-based TF-IDF as in BERTopic (Grootendorst, 2022): the texts of
each class are counted together (scikit-learn's ``CountVectorizer``, English stop words
removed) and term t of class c scores ``tf(t, c) / words(c) * log(1 + A / f(t))``, with
``A`` the mean number of words per class and ``f(t)`` the count of t over all classes. The
classes are the rows that moved and, as the background they must stand out from, the
reference's clusters (or the current window's, when the reference has no texts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TOKEN_PATTERN = r"(?u)\b[^\W\d]\w+\b"
"""Words of two or more characters that do not start with a digit (module and function
names stay whole: ``asyncio``, ``run_until_complete``)."""


def class_tfidf(classes: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[str]]:
    """c-TF-IDF scores (classes × vocabulary) of lists of texts, and the vocabulary."""
    from sklearn.feature_extraction.text import CountVectorizer  # lazily, as in classifier

    joined = [" ".join(texts) for texts in classes]
    vectorizer = CountVectorizer(stop_words="english", token_pattern=TOKEN_PATTERN)
    try:
        counts = vectorizer.fit_transform(joined).toarray().astype(np.float64)
    except ValueError:  # no words at all (empty or stop words only)
        return np.zeros((len(classes), 0)), []
    words = counts.sum(axis=1, keepdims=True)
    tf = counts / np.where(words > 0, words, 1.0)
    frequency = counts.sum(axis=0)
    mean_words = float(counts.sum()) / len(classes)
    idf = np.log1p(mean_words / np.where(frequency > 0, frequency, 1.0))
    return tf * idf, vectorizer.get_feature_names_out().tolist()


def distinctive_terms(target: Sequence[str], background: Sequence[Sequence[str]],
                      limit: int = 5) -> list[str]:
    """The ``limit`` terms of ``target`` with the highest c-TF-IDF against ``background``."""
    scores, vocabulary = class_tfidf([target, *[b for b in background if b]])
    if not vocabulary:
        return []
    first = scores[0]
    order = np.argsort(-first, kind="stable")[:limit]
    return [vocabulary[i] for i in order if first[i] > 0]


def movers(members: np.ndarray, excess: float, witness: np.ndarray) -> np.ndarray:
    """The ``excess`` members (at least one) with the largest ``witness``: the rows that
    made a cluster's share move."""
    take = int(np.clip(round(excess), 1, members.size))
    return members[np.argsort(-witness[members], kind="stable")[:take]]


def nearest_centre(rows: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``rows`` ordered by distance to their own mean vector."""
    points = vectors[rows]
    distance = ((points - points.mean(axis=0)) ** 2).sum(axis=1)
    ordered: np.ndarray = rows[np.argsort(distance, kind="stable")]
    return ordered


def label(central: np.ndarray, texts: Sequence[str], background: Sequence[Sequence[str]],
          terms: int = 5) -> tuple[str, list[str]]:
    """Label of the rows that moved (``central``: ordered by :func:`nearest_centre`): their
    distinctive terms, then the text nearest their centre
    (``"asyncio, loop, ...: asyncio.BaseEventLoop.run_forever: ..."``), and the terms."""
    found = distinctive_terms([texts[i] for i in central], background, terms)
    text = str(texts[int(central[0])])
    return (f"{', '.join(found)}: {text}" if found else text)[:200], found
