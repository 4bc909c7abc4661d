"""The docstring corpus is the same in every process, whatever was imported before it.

Three things changed it from run to run before: scipy.stats writes example output drawn from
the global random state into its docstrings at import (lines marked ``# may vary``), scipy's
deprecation notes print a set of argument names in hash order (``PYTHONHASHSEED``), and
importing scipy edits docstrings of numpy functions it re-exports (``numpy.sinc``), which the
labelled corpus read module by module, before scipy's import, in its first call of a process.
"""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import sys
for name in sys.argv[1:]:
    __import__(name)
from kernelapprox.lm.corpus import docstring_documents, labelled_docstrings
import hashlib
def digest(texts):
    return hashlib.sha256("\\0".join(texts).encode()).hexdigest()
# the labelled corpus first and twice: its first call in a process is the one that differed
first = labelled_docstrings()
print(digest(f"{m}\\t{d}" for d, m in first), len(first))
again = labelled_docstrings()
print(digest(f"{m}\\t{d}" for d, m in again), len(again))
print(digest(docstring_documents()))
"""


def _digest(hash_seed: str, *imports: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *imports],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return done.stdout.strip()


def test_corpus_does_not_depend_on_hash_seed_or_import_order() -> None:
    plain = _digest("1")
    labelled_first, labelled_again, documents = plain.splitlines()
    assert len(documents) == 64
    # labelled_docstrings read numpy before importing scipy in its first call of a process
    # (it kept numpy.sinc twice, as two texts): that call and the next must agree
    assert labelled_first == labelled_again
    # another hash seed, and scipy (and numpy.random's global state) imported first
    assert _digest("2", "numpy.random", "scipy.stats", "scipy.signal") == plain
