"""Packet capture control: tcpdump on a local interface or on another host over SSH."""

from harness.capture.bpf import check_filter, combine_filters, device_filter
from harness.capture.session import CaptureFile, CaptureHandle, check_capture, start_capture
from harness.capture.spec import CaptureSpec, SshTarget, parse_capture_spec

__all__ = [
    "CaptureFile",
    "CaptureHandle",
    "CaptureSpec",
    "SshTarget",
    "check_capture",
    "check_filter",
    "combine_filters",
    "device_filter",
    "parse_capture_spec",
    "start_capture",
]
