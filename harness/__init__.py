"""harness: a lab bench for auditing what a smart speaker does with what it hears."""

__version__ = "0.1.0"
