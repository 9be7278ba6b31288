"""Rapid tests; a failed test stops the supplier at once. Retained samples are in `samples`,
results and lab requests in `results`; both are kept importable from here."""

from app.techsupport.results import record_result as record_rapid_test
from app.techsupport.samples import retain_samples as retain_samples

__all__ = ["record_rapid_test", "retain_samples"]
