"""Compression beyond precision: structured pruning (and distillation), applied at training time."""
