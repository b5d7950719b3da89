"""Which failures are transient: the one list `jobruns repair --transient-only` trusts.

A failure is transient when re-running the same code on the same data is likely to succeed
(the cloud had no capacity, a spot instance was reclaimed, the driver was unreachable). Pure:
never does I/O, and is the only place that names transient causes.
"""

from __future__ import annotations

from typing import Final

from extractor.analytics.signatures import Signature, sign

# Termination codes of the platform or the cloud rather than the job's code (API reference §5:
# types INTERNAL_ERROR and CLOUD_FAILURE; the two rate limits clear by themselves). Trusted only
# when the failure has no error text: with one, its signature decides (a driver that ran out of
# memory ends DRIVER_ERROR too, and fails again).
TRANSIENT_TERMINATION_CODES: Final = frozenset(
    {
        "CLOUD_FAILURE",
        "DRIVER_ERROR",
        "CLUSTER_ERROR",
        "INTERNAL_ERROR",
        "CLUSTER_REQUEST_LIMIT_EXCEEDED",
        "WORKSPACE_RUN_LIMIT_EXCEEDED",
    }
)

# Termination reasons in a cluster's state message ("Reason: SPOT_INSTANCE_TERMINATION ...");
# a signature titled "Cluster terminated: <reason>" by analytics.signatures carries one.
TRANSIENT_REASONS: Final = frozenset(
    {
        "CLOUD_PROVIDER_LAUNCH_FAILURE",
        "CLOUD_PROVIDER_SHUTDOWN",
        "SPOT_INSTANCE_TERMINATION",
        "DRIVER_UNREACHABLE",
        "INSTANCE_UNREACHABLE",
        "COMMUNICATION_LOST",
        "AWS_INSUFFICIENT_INSTANCE_CAPACITY_FAILURE",
        "AWS_INSUFFICIENT_FREE_ADDRESSES_IN_SUBNET_FAILURE",
        "AZURE_VM_EXTENSION_FAILURE",
        "GCP_QUOTA_EXCEEDED",
        "NETWORK_CONFIGURATION_FAILURE",
        "BOOTSTRAP_TIMEOUT",
    }
)

# Signatures (analytics.signatures, version 1) of errors raised by a dependency that was briefly
# down; the titles are kept beside the ids so the list can be read and checked.
TRANSIENT_SIGNATURES: Final = {
    "5dd7cac7015f": "HTTPError: 503 Server Error for url: <url>",
}


def reason_of(signature: Signature | None) -> str | None:
    """The cluster termination reason a signature names, if it is one of those."""
    prefix = "Cluster terminated: "
    if signature is None or not signature.title.startswith(prefix):
        return None
    return signature.title[len(prefix) :].split(" ", 1)[0]


def is_transient(
    signature: Signature | None, termination_code: str | None, *, has_error_text: bool
) -> bool:
    """Whether one failed task (or run) failed for a transient cause."""
    if signature is not None and (
        signature.id in TRANSIENT_SIGNATURES or reason_of(signature) in TRANSIENT_REASONS
    ):
        return True
    return not has_error_text and (termination_code or "") in TRANSIENT_TERMINATION_CODES


def failure_signature(
    error: str | None, state_message: str | None, termination_code: str | None
) -> Signature | None:
    """The signature of a failure from what is known of it (an error text, else the state)."""
    return sign(error, None, state_message, termination_code)
