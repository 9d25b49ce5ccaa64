"""Offline tests of the Helm chart in helm/ (rendered with helm-python-sdk, no cluster needed)."""
