"""Correlation: tie the bench's timeline to the capture, find activations, attribute traffic.

- :mod:`clock`: offset and drift between the bench clock and the capture clock (sync markers, or
  utterance onsets against activations);
- :mod:`activations`: when the device woke and streamed a request, from traffic alone;
- :mod:`attribution`: which endpoints each utterance made the device contact, against background;
- :mod:`run`: all of it for a run directory, as the tables of :mod:`harness.rundir.analysis`.
"""

from harness.correlate.activations import (
    Activation,
    ActivationResult,
    DetectorSettings,
    detect_activations,
)
from harness.correlate.attribution import (
    AttributionSettings,
    attribute,
    contact_episodes,
)
from harness.correlate.capture import CaptureView, read_capture
from harness.correlate.clock import align_onsets, fit_alignment, require_overlap
from harness.correlate.run import Correlation, correlate_run

__all__ = [
    "Activation",
    "ActivationResult",
    "AttributionSettings",
    "CaptureView",
    "Correlation",
    "DetectorSettings",
    "align_onsets",
    "attribute",
    "contact_episodes",
    "correlate_run",
    "detect_activations",
    "fit_alignment",
    "read_capture",
    "require_overlap",
]
