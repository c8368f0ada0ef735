"""Distributed self-supervised audio-visual video pretraining."""
__version__ = "0.1.0"
