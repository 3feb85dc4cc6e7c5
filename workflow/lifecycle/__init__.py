"""After the signature (SPEC §12): profile, publication, suspension, feedback reports."""
