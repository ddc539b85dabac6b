"""Code that runs inside the workload images: curation, training, serving, evaluation."""
