"""The labelled docstring task (kernelapprox.lm.corpus.labelled_docstrings) that APT's demo uses."""

from __future__ import annotations

import pytest

from kernelapprox.lm.corpus import docstring_documents, labelled_docstrings


def test_labels_are_the_modules_and_shared_documents_are_dropped():
    modules = ["numpy.fft", "numpy.linalg", "numpy"]
    pairs = labelled_docstrings(modules)
    per = {m: set(docstring_documents([m])) for m in modules}
    shared = {d for m in modules for d in per[m] if sum(d in per[n] for n in modules) > 1}
    assert shared  # numpy re-exports some of its submodules' functions
    assert {d for d, _ in pairs} == set().union(*per.values()) - shared
    assert all(doc in per[label] for doc, label in pairs)
    assert [label for _, label in pairs] == sorted(label for _, label in pairs)
    with pytest.raises(TypeError, match="modules"):
        labelled_docstrings("numpy")
