"""Recommender algorithms: pure numpy/scipy/gensim code behind one interface (`base`)."""
