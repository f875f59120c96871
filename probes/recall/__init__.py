"""The recall probe: labelled relevance on golden queries, index fidelity (approximate vs
exact search), causes, a paired comparison with a baseline run, and one verdict per run."""
