"""The package version, kept where a board's zip and the manifests can read it without importing the verbs."""
__version__ = "0.1.0"
