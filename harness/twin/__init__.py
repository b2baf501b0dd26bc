"""The digital twin: a simulated Echo that hears the bench, answers it and talks to a loopback
Internet, writing the ground truth (truth.jsonl) a correlation can be measured against."""
